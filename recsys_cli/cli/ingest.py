"""`recsys ingest`: raw source files -> validated, pseudonymised Parquet lake."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from recsys_cli.cli._errors import friendly_errors
from recsys_cli.cli._options import DEFAULT_CONFIG_DIR, ConfigDir, Overrides


@friendly_errors
def ingest(
    overrides: Overrides = None,
    append: Annotated[
        bool,
        typer.Option("--append", help="Add new event files to the existing lake; old partitions stay as they are."),
    ] = False,
    live_events: Annotated[
        list[Path] | None,
        typer.Option(
            "--live-events",
            help="Also ingest this export of a service's event log (repeatable); its user ids are already "
            "this lake's pseudonyms, checked by the key fingerprint it carries.",
        ),
    ] = None,
    config_dir: ConfigDir = DEFAULT_CONFIG_DIR,
) -> None:
    """Validate, deduplicate and pseudonymise a data source into a Parquet lake.

    Re-running on unchanged input is a no-op, unless the lake no longer matches its
    manifest (every file is re-hashed): then it is rebuilt. Rejected rows go to quarantine/ with a reason.

    Example: recsys ingest data=generic data.path=exports/shop
    """
    from recsys_cli.cli.render import ingest_summary
    from recsys_cli.config import compose
    from recsys_cli.console import console, rich_progress
    from recsys_cli.tasks import ingest as task

    cfg = compose("ingest", overrides, config_dir)
    with rich_progress() as reporter:
        result = task.run(cfg, append=append, reporter=reporter, live_events=live_events or ())
    if result.no_op:
        ingest_summary(result.manifest, console)
        console.print(f"[yellow]no-op:[/] {result.message} ({result.lake})")
        return
    if result.manifest["pii"]["development_key"]:
        console.print(
            "[yellow]warning:[/] user ids pseudonymised with the public DEVELOPMENT key; "
            "set $RECSYS_PII_KEY for real data"
        )
    if result.repaired:
        console.print(
            f"[yellow]repaired:[/] the lake no longer matched its manifest ({result.repaired}); rebuilt it",
            highlight=False,
            soft_wrap=True,
        )
    ingest_summary(result.manifest, console)
    console.print(f"[green]lake written:[/] {result.lake} (manifest.json)")
