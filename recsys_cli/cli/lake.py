"""`recsys lake`: inspect a lake written by `recsys ingest`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from recsys_cli.cli._errors import friendly_errors
from recsys_cli.cli._help import Typer

app = Typer(
    help="Inspect lakes written by `recsys ingest`.\n\nExample: recsys lake describe data/lake/synth",
    no_args_is_help=True,
)


@app.command("describe")
@friendly_errors
def describe(
    path: Annotated[Path, typer.Argument(help="Lake folder (contains manifest.json).")],
    verify: Annotated[bool, typer.Option("--verify", help="Re-hash every file against the manifest.")] = False,
    brief: Annotated[bool, typer.Option("--brief", help="Skip the summary tables.")] = False,
) -> None:
    """Summarise a lake from its manifest after checking the lake still matches it.

    Always: every listed file present with its size, no unlisted Parquet file, the
    manifest's own digest. With --verify: every file's sha256 too, and every problem listed.

    Example: recsys lake describe data/lake/synth --verify --brief
    """
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
