"""`recsys train` and `recsys recommend`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from recsys_cli.cli._errors import friendly_errors
from recsys_cli.cli._options import DEFAULT_CONFIG_DIR, ConfigDir, Overrides, help_choices


@help_choices("model")
@friendly_errors
def train(overrides: Overrides = None, config_dir: ConfigDir = DEFAULT_CONFIG_DIR) -> None:
    """Fit a model on a fold's features and report its metrics.

    model={model};
    part=val (fit on train) or part=test (refit on train + validation). Writes runs/<model>/<timestamp>/.
    """
    from recsys_cli.config import compose
    from recsys_cli.console import console, rich_progress, rows_table
    from recsys_cli.tasks import train as task

    cfg = compose("train", overrides, config_dir)
    with rich_progress() as reporter:
        result = task.run(cfg, reporter=reporter)
    rows = [(k, v) for k, v in result.metrics.items()]
    console.print(rows_table(f"Metrics ({cfg.part})", ["metric", "value"], rows))
    console.print(f"[green]run written:[/] {result.run}")


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
) -> None:
    """Write top-K recommendations of a run as Parquet (user_id, item_id, rank, score).

    Users come from --users, or default to the evaluated users of the run's window.
    --users may hold raw ids (pseudonymised with the lake's key, $RECSYS_PII_KEY) or
    the lake's pseudonyms; the output keeps them as given, so raw ids need an --out
    file outside the run folder. Users the model does not know are counted.
    """
    from recsys_cli.console import console, rich_progress
    from recsys_cli.tasks import recommend as task

    with rich_progress() as reporter:
        path, n_users, unknown = task.run(run, k, users, out, exclude_seen=not include_seen, reporter=reporter)
    if users is not None:
        colour = "yellow" if unknown else "green"
        console.print(f"[{colour}]{unknown:,} of {n_users:,} users unknown to the model[/] (cold-start answer)")
    console.print(f"[green]recommendations written:[/] {path} ({n_users:,} users, up to {k} items each)")
