"""`recsys lake`: inspect a lake written by `recsys ingest`."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from recsys_cli.cli._errors import friendly_errors
from recsys_cli.cli._help import Typer
from recsys_cli.cli._options import DEFAULT_CONFIG_DIR, ConfigDir, SharedOverrides, chain_config, shift_override

if TYPE_CHECKING:
    from omegaconf import DictConfig

app = Typer(
    help="Inspect lakes written by `recsys ingest`.\n\nExample: recsys lake describe data/lake/synth",
    no_args_is_help=True,
)


@app.command("describe")
@friendly_errors
def describe(
    path: Annotated[
        str | None,
        typer.Argument(
            metavar="PATH",
            help="Lake folder (contains manifest.json) [the lake of the overrides' paths.data_dir and data].",
            show_default=False,
        ),
    ] = None,
    overrides: SharedOverrides = None,
    verify: Annotated[bool, typer.Option("--verify", help="Re-hash every file against the manifest.")] = False,
    brief: Annotated[bool, typer.Option("--brief", help="Skip the summary tables.")] = False,
    config_dir: ConfigDir = DEFAULT_CONFIG_DIR,
) -> None:
    """Summarise a lake from its manifest after checking the lake still matches it.

    Always: every listed file present with its size, no unlisted Parquet file, the
    manifest's own digest. With --verify: every file's sha256 too, and every problem listed.

    Without PATH, the lake is the one `recsys ingest` writes with the same overrides:
    lake_dir of the chain (conf/chain.yaml), which follows paths.data_dir and data. The
    other shared overrides are checked and otherwise ignored.

    Example: recsys lake describe data/lake/synth --verify --brief
    """
    given, shared = shift_override(path, overrides)
    chain = chain_config("lake describe", shared, config_dir)
    with _lake_folder(given, chain, config_dir) as folder:
        _describe(folder, verify, brief)


@contextmanager
def _lake_folder(path: str | None, chain: DictConfig | None, config_dir: Path) -> Iterator[Path]:
    """PATH, or the chain's lake_dir (a verified local mirror where it is remote)."""
    from recsys_cli.config import compose_shared
    from recsys_cli.data.remote import mirrored

    if path is not None:
        yield Path(path)
        return
    cfg = chain if chain is not None else compose_shared("lake describe", [], config_dir)
    if "lake_dir" not in cfg:
        raise typer.BadParameter("give the lake folder (this config folder has no chain.yaml)", param_hint="PATH")
    with mirrored(cfg, reads=["lake_dir"]) as local:
        yield Path(str(local.lake_dir))


def _describe(path: Path, verify: bool, brief: bool) -> None:
    """Check the lake against its manifest, then summarise it."""
    from recsys_cli.cli.render import ingest_summary
    from recsys_cli.console import console
    from recsys_cli.data.lake import check_kind, damaged, folder_problems, is_legacy, read_manifest

    manifest = read_manifest(path)
    check_kind(path, manifest, "lake")
    problems = folder_problems(path, manifest, full=verify)
    if problems:
        for problem in problems[:20] if verify else []:
            console.print(f"[red]problem:[/] {problem}", highlight=False)
        raise damaged(path, "lake", problems, "run `recsys ingest` again to repair it")
    if not brief:
        ingest_summary(manifest, console)
    if is_legacy(manifest):
        console.print(
            "[yellow]unsealed manifest:[/] written before manifests carried a digest of their own content "
            "(format 1); its files were checked, its row counts cannot be. Run `recsys ingest` again to seal it"
        )
    n = len(manifest.get("outputs", []))
    if verify:
        console.print(f"[green]verified:[/] {n} files match their sha256")
    else:
        console.print(f"[green]checked:[/] {n} files present with their recorded sizes (--verify re-hashes them)")
