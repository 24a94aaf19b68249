"""`recsys reproduce`: rerun a named experiment and fail when its metrics drift."""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from recsys_cli.cli._errors import friendly_errors
from recsys_cli.cli._options import DEFAULT_CONFIG_DIR, ConfigDir, SharedOverrides, chain_config

if TYPE_CHECKING:
    from rich.table import Table

    from recsys_cli.experiments import Check
    from recsys_cli.tasks.reproduce import ReproduceResult

_STATUS_STYLE = {"pass": "green", "fail": "bold red", "missing": "bold red", "nan": "bold red"}


@friendly_errors
def reproduce(
    experiment: Annotated[Path, typer.Argument(help="Experiment file, e.g. experiments/synth_small.yaml.")],
    workdir: Annotated[
        Path | None,
        typer.Option("--workdir", help="Folder for the chain's data and runs (default: runs/reproduce/<experiment>)."),
    ] = None,
    out: Annotated[Path | None, typer.Option("--out", help="Result JSON (default: <workdir>/result.json).")] = None,
    overrides: SharedOverrides = None,
    config_dir: ConfigDir = DEFAULT_CONFIG_DIR,
) -> None:
    """Rerun an experiment's whole chain and compare its metrics with the expected ones.

    Data, ingest, split, features, check-leakage and training run into their own
    folder (never data/ or runs/ themselves). Prints expected vs measured with
    each tolerance, writes the verdict as JSON, and exits 1 when any metric falls
    outside its tolerance or was not produced.

    The chain's shared overrides are checked and otherwise ignored: the experiment
    file names its data, split, target and model, and the work stays in its folder.

    Example: recsys reproduce experiments/synth_small.yaml
    """
    from recsys_cli.console import console, rich_progress
    from recsys_cli.experiments import load_experiment
    from recsys_cli.tasks import reproduce as task

    chain_config("reproduce", overrides, config_dir)
    spec = load_experiment(experiment)  # a malformed file fails here, before any work
    folder = workdir if workdir is not None else Path("runs") / "reproduce" / spec.name
    chain = task.Chain(spec, folder, config_dir)  # so does a preset that does not fit the file
    with rich_progress() as reporter:
        result = task.run(chain, out, reporter=reporter)
    console.print(checks_table(result))
    console.print(_verdict(result), highlight=False, soft_wrap=True)
    console.print(f"[green]result written:[/] {result.output}", highlight=False)
    if not result.passed:
        raise typer.Exit(1)


def checks_table(result: ReproduceResult) -> Table:
    """Expected (with its accepted band) vs measured, one row per metric the
    experiment file lists; narrow enough for an 80-column CI log."""
    from recsys_cli.console import rows_table

    exp = result.experiment
    rows = [_row(c) for c in result.checks]
    table = rows_table(f"{exp.name} (preset {exp.preset})", ["metric", "expected", "measured", "Δ", "result"], rows)
    for column in table.columns:
        column.no_wrap = True  # a number cut short is worse than a wide table
    return table


def _row(c: Check) -> list[str]:
    style = _STATUS_STYLE[c.status]
    return [
        c.metric,
        f"{_number(c.expected.value)} ±{c.expected.allowed:.4g}",
        "—" if c.measured is None else _number(c.measured),
        "—" if c.difference is None else _difference(c.difference),
        f"[{style}]{c.status}[/]",
    ]


def _verdict(result: ReproduceResult) -> str:
    failed = [c.metric for c in result.checks if not c.passed]
    total = len(result.checks)
    if not failed:
        return f"[bold green]reproduced:[/] {total} of {total} metrics within tolerance"
    return f"[bold red]not reproduced:[/] {len(failed)} of {total} metrics off: {', '.join(failed)}"


def _number(value: float) -> str:
    if not math.isfinite(value):
        return str(value)
    if value == int(value) and abs(value) >= 1:
        return f"{int(value):,}"  # counts such as users
    return f"{value:.4f}"


def _difference(value: float) -> str:
    if value == 0:
        return "0"
    return f"{value:+.1e}" if abs(value) < 1e-4 else f"{value:+.4f}"
