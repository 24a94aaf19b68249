"""`recsys train` and `recsys recommend`."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer

from recsys_cli.cli._errors import friendly_errors
from recsys_cli.cli._options import DEFAULT_CONFIG_DIR, ConfigDir, Overrides, SharedOverrides, help_choices


@help_choices("model")
@friendly_errors
def train(overrides: Overrides = None, config_dir: ConfigDir = DEFAULT_CONFIG_DIR) -> None:
    """Fit a model on a fold's features and report its metrics.

    Models: model={model}; each is conf/model/NAME.yaml.

    part=val (the default) fits on train, with early stopping and selection on the
    validation window. part=test refits on train + validation with the best epoch and
    settings that the matching part=val run chose: that run is found by itself,
    refit_from=RUN names one, and with trainer.max_epochs=N none is needed.
    part=val+test runs both in turn.

    Writes runs/<model>/<timestamp>/ per run; a fit without a progress bar logs each epoch.

    Example: recsys train model=sasrec part=val+test
    """
    from recsys_cli.config import compose
    from recsys_cli.console import console, rich_progress, rows_table
    from recsys_cli.tasks import train as task

    overrides = list(overrides or [])
    cfg = compose("train", [*overrides, *task.refit_overrides(overrides)], config_dir)
    with rich_progress() as reporter, _epoch_lines():
        for result in task.run_parts(cfg, reporter=reporter):
            part = "test" if any(k.startswith("test/") for k in result.metrics) else "val"
            if result.refit is not None and result.refit.source:
                line = f"refit with {result.refit.describe()} as chosen by {result.refit.source['run']}"
                console.print(line, soft_wrap=True, highlight=False)
            rows = [(k, v) for k, v in result.metrics.items()]
            console.print(rows_table(f"Metrics ({part})", ["metric", "value"], rows))
            console.print(f"[green]run written:[/] {result.run}")


@contextmanager
def _epoch_lines() -> Iterator[None]:
    """Show the shared training loop's per-epoch log lines (models/lightning.py's
    `EpochLog`, used when no progress bar is drawn) on stderr for the command."""
    import logging

    from rich.logging import RichHandler

    from recsys_cli.console import err_console

    logger = logging.getLogger("recsys_cli.models.lightning")
    handler = RichHandler(console=err_console, show_time=False, show_level=False, show_path=False)
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


@friendly_errors
def recommend(
    run: Annotated[Path, typer.Argument(help="Run folder written by `recsys train`.")],
    k: Annotated[int, typer.Option("--k", min=1, max=1_000_000, help="Items per user.")] = 10,
    users: Annotated[Path | None, typer.Option("--users", help="Parquet or CSV with a user_id column.")] = None,
    out: Annotated[Path | None, typer.Option("--out", help="Output Parquet [RUN/recommendations.parquet].")] = None,
    include_seen: Annotated[
        bool,
        typer.Option(
            "--include-seen",
            help="Also recommend the items the run's target counts as already seen (its seen_events).",
        ),
    ] = False,
    overrides: SharedOverrides = None,
    config_dir: ConfigDir = DEFAULT_CONFIG_DIR,
) -> None:
    """Write top-K recommendations of a run as Parquet (user_id, item_id, rank, score).

    Users come from --users, or default to the evaluated users of the run's window.
    --users may hold raw ids (pseudonymised with the lake's key, $RECSYS_PII_KEY) or
    the lake's pseudonyms; the output keeps them as given, so raw ids need an --out
    file outside the run folder. Users the model does not know are counted.

    The chain's shared overrides are checked and otherwise ignored: the run's own
    config says where its data is.

    Example: recsys recommend runs/ease/20260301T090000000000Z --k 20 --users users.csv --out top20.parquet
    """
    from recsys_cli.config import compose_shared
    from recsys_cli.console import console, rich_progress
    from recsys_cli.tasks import recommend as task

    if overrides:
        compose_shared("recommend", overrides, config_dir)
    with rich_progress() as reporter:
        path, n_users, unknown = task.run(run, k, users, out, exclude_seen=not include_seen, reporter=reporter)
    if users is not None:
        colour = "yellow" if unknown else "green"
        console.print(f"[{colour}]{unknown:,} of {n_users:,} users unknown to the model[/] (cold-start answer)")
    console.print(f"[green]recommendations written:[/] {path} ({n_users:,} users, up to {k} items each)")
