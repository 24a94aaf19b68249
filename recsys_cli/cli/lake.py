"""`recsys lake`: inspect a lake written by `recsys ingest`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from recsys_cli.cli._errors import friendly_errors

app = typer.Typer(help="Inspect lakes written by `recsys ingest`.", no_args_is_help=True)


@app.command("describe")
@friendly_errors
def describe(
    path: Annotated[Path, typer.Argument(help="Lake folder (contains manifest.json).")],
    verify: Annotated[bool, typer.Option("--verify", help="Re-hash every file against the manifest.")] = False,
    brief: Annotated[bool, typer.Option("--brief", help="Skip the summary tables.")] = False,
) -> None:
    """Summarise a lake from its manifest; with --verify, check every file's sha256."""
    from recsys_cli.cli.render import ingest_summary
    from recsys_cli.console import console
    from recsys_cli.data.lake import read_manifest
    from recsys_cli.data.lake import verify as verify_lake
    from recsys_cli.errors import LakeError

    manifest = read_manifest(path)
    if not brief:
        ingest_summary(manifest, console)
    if verify:
        problems = verify_lake(path)
        if problems:
            raise LakeError(f"{path}: {len(problems)} file(s) differ from the manifest: " + "; ".join(problems[:5]))
        console.print(f"[green]verified:[/] {len(manifest['outputs'])} files match their sha256")
