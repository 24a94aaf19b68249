"""`recsys events`: the service's durable log of live events (serve.event_log)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from recsys_cli.cli._errors import friendly_errors
from recsys_cli.cli._help import Typer
from recsys_cli.cli._options import DEFAULT_CONFIG_DIR, ConfigDir

app = Typer(
    no_args_is_help=True,
    help="The service's durable log of live events: export it for ingest.\n\n"
    "Example: recsys events export live.parquet",
)


@app.command("export")
@friendly_errors
def export(
    out: Annotated[Path, typer.Argument(metavar="OUT", help="Parquet file to write.", show_default=False)],
    overrides: Annotated[
        list[str] | None,
        typer.Argument(
            help="Hydra overrides of conf/serve.yaml, e.g. serve.event_log.dir=/srv/events", show_default=False
        ),
    ] = None,
    config_dir: ConfigDir = DEFAULT_CONFIG_DIR,
) -> None:
    """Write every event the service logged (serve.event_log.dir) to OUT, with the
    lake key's fingerprint, for the next retrain.

    The user ids stay the lake's pseudonyms; `recsys ingest --append --live-events OUT`
    adds them to the lake, after checking the key by its fingerprint.

    Example: recsys events export live.parquet serve.event_log.dir=/srv/events
    """
    from recsys_cli.config import compose
    from recsys_cli.console import console
    from recsys_cli.serving.event_log import export_log

    cfg = compose("serve", overrides, config_dir)
    written, bad = export_log(Path(str(cfg.serve.event_log.dir)), out, "serve.event_log.dir")
    skipped = f"; {bad:,} unreadable line(s) left out" if bad else ""
    console.print(f"[green]exported:[/] {written:,} events to {out}{skipped}", soft_wrap=True, highlight=False)
