"""The `recsys` command: one file per command group, assembled here.

Heavy libraries (polars, torch, hydra's instantiate) are imported inside command
bodies so that `recsys --help` answers at once.
"""

from __future__ import annotations

from typing import Annotated

import typer

from recsys_cli import __version__
from recsys_cli.cli import (
    abtest,
    compare,
    datasets,
    evaluate,
    events,
    explain,
    export,
    features,
    ingest,
    lake,
    monitor,
    registry,
    reproduce,
    retrain,
    serve,
    split,
    sweep,
    train,
)
from recsys_cli.cli._errors import debug_from_env, state, usage_error
from recsys_cli.cli._help import Typer
from recsys_cli.console import err_console

app = Typer(
    name="recsys",
    help=(
        "Recommendations from a shop's own event logs: a validated lake, time splits, point-in-time "
        "features, training, evaluation, a model registry and an HTTP service, one command per step.\n\n"
        "Every command takes config overrides (key=value or group=option) and accepts the chain's "
        "shared keys among them (paths.data_dir, data, split, target, runs_dir, ...: conf/chain.yaml), "
        "so one override string serves the whole chain: a command uses those it can and checks the rest.\n\n"
        "Example: recsys train model=ease seed=1"
    ),
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.command("ingest")(ingest.ingest)
app.command("split")(split.split)
app.command("features")(features.features)
app.command("check-leakage")(features.check_leakage)
app.command("train")(train.train)
app.command("recommend")(train.recommend)
app.command("compare")(compare.compare)
app.command("abtest")(abtest.abtest)
app.command("evaluate")(evaluate.evaluate)
app.command("explain")(explain.explain)
app.command("reproduce")(reproduce.reproduce)
app.command("export")(export.export)
app.command("serve")(serve.serve)
app.command("monitor")(monitor.monitor)
app.command("retrain")(retrain.retrain)
app.add_typer(datasets.app, name="datasets")
app.add_typer(lake.app, name="lake")
app.add_typer(sweep.app, name="sweep")
app.add_typer(registry.app, name="registry")
app.add_typer(events.app, name="events")


def _version(value: bool) -> None:
    if value:
        typer.echo(f"recsys {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    debug: Annotated[bool, typer.Option("--debug", help="Show full tracebacks for known errors.")] = False,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    state["debug"] = debug or debug_from_env()


def main() -> None:
    """Run `recsys`. Typer's usage errors (an option out of its range, an unknown
    option, a missing argument) become one red line naming the option, like every
    other refusal, instead of a usage panel; they keep Typer's exit code 2."""
    try:
        code = app(prog_name="recsys", standalone_mode=False)
    except typer.TyperException as exc:
        code = usage_error(exc)
    except typer.Abort:
        err_console.print("[bold red]error:[/] aborted", highlight=False)
        code = 1
    raise SystemExit(code if isinstance(code, int) else 0)
