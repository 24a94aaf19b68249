"""`recsys export RUN`: the run's model package, pushed to the registry."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from recsys_cli.cli._errors import friendly_errors
from recsys_cli.cli._options import DEFAULT_CONFIG_DIR, ConfigDir


@friendly_errors
def export(
    run: Annotated[Path, typer.Argument(metavar="RUN", help="Run folder written by `recsys train`.")],
    overrides: Annotated[
        list[str] | None,
        typer.Argument(help="Hydra overrides, e.g. recent_days=14 fallbacks.top_n=500", show_default=False),
    ] = None,
    name: Annotated[
        str | None, typer.Option("--name", help="Package name in the registry [<data>-<model>, e.g. synth-ease].")
    ] = None,
    out: Annotated[Path | None, typer.Option("--out", help="Package folder [RUN/package].")] = None,
    push: Annotated[
        bool, typer.Option("--push/--no-push", help="Push the package to the registry (registry.uri) once written.")
    ] = True,
    config_dir: ConfigDir = DEFAULT_CONFIG_DIR,
) -> None:
    """Write the run's model package and push it to the registry.

    The package holds the model (safetensors + JSON; the ranker's LightGBM models as
    LightGBM text files), ANN indexes of embedding models, the vocabularies, the item
    table, popularity fallbacks, the user snapshot as of the run's cutoff and its
    lineage, each file's sha256 in a sealed manifest.json.

    The run and its data are verified first; the package is built beside its folder
    and renamed into place, replacing only an earlier package. Then it is pushed to
    the registry as a new version of NAME, unless --no-push.

    Example: recsys export runs/ease/20260301T091500000000Z --name shop-ease
    """
    from recsys_cli.config import compose
    from recsys_cli.console import console, rows_table
    from recsys_cli.tasks import export as task

    cfg = compose("export", overrides, config_dir)
    result = task.run(run, cfg, out=out, name=name, push=push)
    m = result.manifest
    total = sum(int(e["bytes"]) for e in m["files"])
    rows = [
        ("name", m["name"]),
        ("model", m["model"]["class"].rsplit(".", 1)[-1]),
        ("cutoff", m["lineage"]["cutoff"]),
        ("items / users", f"{m['contents']['items']:,} / {m['contents']['users']:,}"),
        ("files", f"{len(m['files']) + 1} ({total / 1e6:,.2f} MB)"),
        ("feature definitions", m["feature_definitions_sha256"][:16]),
    ]
    rows += [
        (f"ANN {model} recall@{a['k']}", f"{a['recall']:.4f} ({a['kind']})") for model, a in m.get("ann", {}).items()
    ]
    console.print(rows_table("Package", ["", ""], rows))
    console.print(f"[green]package written:[/] {result.path}", soft_wrap=True, highlight=False)
    if result.pushed is not None:
        pushed = result.pushed
        console.print(f"[green]pushed:[/] {pushed['name']} version {pushed['version']}", highlight=False)
