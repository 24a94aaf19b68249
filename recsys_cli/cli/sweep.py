"""`recsys sweep`: Optuna hyperparameter search, and `recsys sweep show STUDY`.

`recsys sweep model=sasrec [overrides]` is short for `recsys sweep run ...`: the
first argument is taken as a subcommand only when it names one."""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from typing import Annotated, Any

import typer

from recsys_cli.cli._errors import friendly_errors
from recsys_cli.cli._help import HelpGroup, Typer
from recsys_cli.cli._options import DEFAULT_CONFIG_DIR, ConfigDir, Overrides, SharedOverrides, chain_config

_STYLE = {"complete": "green", "pruned": "yellow", "failed": "red", "interrupted": "magenta", "running": "cyan"}
_NOTE_CHARS = 70
_POLL_S = 2.0


class _RunByDefault(HelpGroup):
    """A group whose default subcommand is `run`, so overrides follow `sweep` directly."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ("--help", "-h"):
            args = ["run", *args]
        return super().parse_args(ctx, args)  # type: ignore[no-any-return]


app = Typer(
    cls=_RunByDefault,
    no_args_is_help=True,
    help="Optuna hyperparameter search over a conf/sweep/ search space.\n\n"
    "`recsys sweep model=NAME [sweep=NAME] key=value...` runs one (short for `recsys sweep run`); "
    "`recsys sweep show STUDY` prints one.\n\n"
    "Example: recsys sweep model=two_tower --trials 30",
)


@app.command("run")
@friendly_errors
def run(
    overrides: Overrides = None,
    trials: Annotated[
        int, typer.Option("--trials", min=1, help="Trials the study should hold; a rerun continues up to it.")
    ] = 20,
    timeout: Annotated[
        str | None, typer.Option("--timeout", help="Start no trial after this long, e.g. 3600, 45m, 2h.")
    ] = None,
    workers: Annotated[
        int,
        typer.Option("--workers", min=1, max=256, help="Worker processes on this machine (one GPU each when several)."),
    ] = 1,
    storage: Annotated[
        str | None,
        typer.Option(
            "--storage",
            help="Study storage: a SQLAlchemy URL (postgresql+psycopg://...) or journal:PATH "
            "[SQLite in the sweep folder].",
        ),
    ] = None,
    study: Annotated[str | None, typer.Option("--study", help="Study name [<data>-<sweep name>].")] = None,
    refit: Annotated[
        bool, typer.Option("--refit", help="Refit the best configuration on train + validation and score test.")
    ] = False,
    config_dir: ConfigDir = DEFAULT_CONFIG_DIR,
) -> None:
    """Search hyperparameters: each trial is `recsys train part=val` with the trial's
    overrides, scored on validation (sweep.metrics, default val/ndcg@10).

    The same command on several machines (with a shared --storage) or --workers N
    on one joins one study; a rerun resumes it. Writes <sweeps_dir>/<study>/:
    trials/, best_overrides.txt, experiment.yaml, plots/*.png, best.json.

    Example: recsys sweep run model=sasrec --trials 50 --workers 4
    """
    import optuna
    from rich.live import Live

    from recsys_cli.console import console, rich_progress
    from recsys_cli.sweep.storage import redact
    from recsys_cli.tasks import sweep as task

    optuna.logging.set_verbosity(optuna.logging.ERROR)  # the table reports every trial, failures included
    plan = task.prepare(
        list(overrides or []),
        config_dir,
        study=study,
        storage=storage,
        trials=trials,
        timeout_s=_seconds(timeout),
    )
    console.print(f"study [bold]{plan.study}[/] in {redact(plan.storage)}; folder {plan.out}", highlight=False)
    view = _TrialsView(task.watch(plan), plan.study, plan.metrics, plan.directions, plan.space().names, plan.trials)
    with Live(view, console=console, refresh_per_second=1, transient=False) as live:
        done = task.optimise(plan, workers)
        view.final = True
        live.refresh()
    with rich_progress() as reporter:
        result = task.finish(plan, done.stopped, refit=refit, reporter=reporter)
    _report(result, done.worker_errors)
    if done.stopped == "interrupted":
        console.print(f"[magenta]interrupted:[/] rerun the same command to resume study {plan.study}")
        raise typer.Exit(130)
    if done.worker_errors:
        raise typer.Exit(1)


@app.command("show")
@friendly_errors
def show(
    study: Annotated[str, typer.Argument(help="Study name (its folder under sweeps_dir) or a sweep folder.")],
    storage: Annotated[
        str | None, typer.Option("--storage", help="Storage URL or journal:PATH, for a study stored elsewhere.")
    ] = None,
    top: Annotated[int, typer.Option("--top", min=0, help="Only the N best completed trials (0: every trial).")] = 0,
    overrides: SharedOverrides = None,
    config_dir: ConfigDir = DEFAULT_CONFIG_DIR,
) -> None:
    """Print a study, finished or still running: every trial and the best so far.

    The chain's shared overrides are checked and otherwise ignored: a study is found
    by its folder under sweeps_dir (conf/sweep.yaml), or --storage.

    Example: recsys sweep show synth-sasrec --top 5
    """
    from recsys_cli.console import console
    from recsys_cli.tasks import sweep as task

    chain_config("sweep show", overrides, config_dir)
    view = task.show(study, storage, config_dir)
    rows = view.records
    if top:
        ranked = [r for r in rows if r.outcome == "complete" and r.values is not None]
        ranked.sort(key=lambda r: r.values[0], reverse=view.directions[0] == "maximize")  # type: ignore[index]
        rows = ranked[:top]
    title = f"Study {view.name} ({view.storage})"
    console.print(_table(rows, view.metrics, view.params, view.best, title, _counts_line(view.counts)))
    console.print(_best_line(view.records, view.best, view.metrics), highlight=False)


# --------------------------------------------------------------------------- rendering


class _TrialsView:
    """The live table: re-reads the study (every worker's trials, on any machine)
    at most every couple of seconds and shows the latest rows that fit the screen."""

    def __init__(
        self,
        load: Any,
        name: str,
        metrics: Sequence[str],
        directions: Sequence[str],
        params: Sequence[str],
        budget: int,
    ) -> None:
        self.load, self.name, self.metrics, self.params, self.budget = load, name, metrics, params, budget
        self.directions = directions
        self.started = time.monotonic()
        self.final = False
        self._records: list[Any] = []
        self._read_at = 0.0

    def __rich__(self) -> Any:
        from recsys_cli.console import console

        if self.final or time.monotonic() - self._read_at >= _POLL_S:
            self._records = self.load()
            self._read_at = time.monotonic()
        rows, best = self._records, _best_numbers(self._records, self.directions)
        if not self.final:
            rows = _latest(rows, best, max(console.size.height - 12, 5))
        counts: dict[str, int] = {}
        for r in self._records:
            counts[r.outcome] = counts.get(r.outcome, 0) + 1
        elapsed = _duration(time.monotonic() - self.started)
        title = f"Study {self.name}: {self.budget} trials wanted, {elapsed} elapsed"
        caption = f"{_counts_line(counts)}\n{_best_line(self._records, best, self.metrics)}"
        return _table(rows, self.metrics, self.params, best, title, caption)


def _table(
    rows: Sequence[Any], metrics: Sequence[str], params: Sequence[str], best: Sequence[int], title: str, caption: str
) -> Any:
    """One row per trial. Parameters get a column each when the console is wide
    enough, else share one wrapped `params` column."""
    from rich.markup import escape

    from recsys_cli.console import console, titled_table

    short = _short_names(params)
    apart = console.width >= 44 + 12 * len(metrics) + sum(max(len(n), 6) + 3 for n in short)
    table = titled_table(title, caption)
    for name in ["#", "state", *metrics]:
        table.add_column(escape(name), justify="left" if name == "state" else "right", no_wrap=True)
    for name in short if apart else ["params"]:
        table.add_column(escape(name), justify="right" if apart else "left")
    table.add_column("duration", justify="right", no_wrap=True)
    table.add_column("note", justify="left")
    for r in rows:
        style = _STYLE.get(r.outcome, "dim")
        values = r.values or [None] * len(metrics)
        shown = [_fmt(r.params.get(p)) for p in params]
        cells = shown if apart else [" ".join(f"{n}={v}" for n, v in zip(short, shown, strict=True) if v)]
        table.add_row(
            f"{r.number}{' ★' if r.number in best else ''}",
            f"[{style}]{r.outcome}[/]",
            *(_value(v, r.outcome) for v in values),
            *(escape(c) for c in cells),
            _duration(r.duration_s) if r.duration_s is not None else "",
            escape(_clip(r.note)),
        )
    return table


def _value(value: float | None, outcome: str) -> str:
    """A pruned trial's value is its last epoch's, not a final score: shown dimmed."""
    if value is None:
        return ""
    return f"[dim]{value:.4f}[/]" if outcome == "pruned" else f"{value:.4f}"


def _latest(rows: Sequence[Any], best: Sequence[int], limit: int) -> list[Any]:
    """The last `limit` rows, and the best ones even when older."""
    tail = list(rows[-limit:])
    kept = {r.number for r in tail}
    return sorted([*(r for r in rows if r.number in best and r.number not in kept), *tail], key=lambda r: r.number)


def _best_numbers(rows: Sequence[Any], directions: Sequence[str]) -> list[int]:
    """The best completed trial, or with several objectives the completed trials no
    other one beats on every objective (the Pareto front), as the display sees them."""
    sign = [1.0 if d == "maximize" else -1.0 for d in directions]
    done = [(r.number, [s * v for s, v in zip(sign, r.values, strict=True)]) for r in rows if r.outcome == "complete"]
    if len(sign) == 1:
        return [max(done, key=lambda d: d[1][0])[0]] if done else []
    return [n for n, v in done if not any(_dominates(w, v) for _, w in done)]


def _dominates(a: Sequence[float], b: Sequence[float]) -> bool:
    return all(x >= y for x, y in zip(a, b, strict=True)) and any(x > y for x, y in zip(a, b, strict=True))


def _best_line(rows: Sequence[Any], best: Sequence[int], metrics: Sequence[str]) -> str:
    chosen = [r for r in rows if r.number in best]
    if not chosen:
        return "best: none yet (no completed trial)"
    if len(chosen) > 1 or len(metrics) > 1:
        return "Pareto front: " + ", ".join(f"#{r.number}" for r in chosen)
    r = chosen[0]
    params = " ".join(f"{k}={_fmt(v)}" for k, v in zip(_short_names(list(r.params)), r.params.values(), strict=True))
    return f"best: #{r.number} {metrics[0]} {r.values[0]:.4f} ({params})"


def _counts_line(counts: dict[str, int]) -> str:
    order = ["complete", "pruned", "failed", "interrupted", "running", "waiting"]
    return ", ".join(f"{counts[k]} {k}" for k in order if counts.get(k)) or "no trial yet"


def _report(result: Any, worker_errors: Sequence[str]) -> None:
    from rich.markup import escape

    from recsys_cli.console import console, err_console, kv_table, rows_table

    console.print(f"stopped: {result.stopped} ({_counts_line(result.counts)})", highlight=False)
    if result.best:
        head = result.best[0]
        label = "Pareto trial with the best " + result.plan.metrics[0] if len(result.best) > 1 else "Best trial"
        rows = {**head["values"], **head["params"], "best epoch": head["best_epoch"] or "", "run": head["run"] or ""}
        console.print(kv_table(f"{label} #{head['number']}", rows))
    if result.refit:
        metrics = [(k, v) for k, v in result.refit["metrics"].items() if k.startswith("test/")]
        console.print(rows_table(f"Refit of trial #{result.refit['trial']} (test)", ["metric", "value"], metrics))
    names = ", ".join(sorted(p.name for p in result.files.values()))
    console.print(f"[green]written in {escape(result.plan.out)}:[/] {names}", highlight=False)
    for name, why in result.skipped_plots.items():
        console.print(f"[dim]plot {name} not drawn: {escape(why)}[/]", highlight=False)
    for line in worker_errors:
        err_console.print(f"[bold red]error:[/] {escape(line)}", highlight=False)


def _short_names(names: Sequence[str]) -> list[str]:
    """Parameter names without the prefix they all share (`model.lr` -> `lr`)."""
    if not names:
        return []
    heads = {n.split(".", 1)[0] for n in names}
    if len(heads) == 1 and all("." in n for n in names):
        return [n.split(".", 1)[1] for n in names]
    return list(names)


def _fmt(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.3g}"
    return str(value)


def _clip(text: str) -> str:
    line = text.splitlines()[0] if text else ""
    return line if len(line) <= _NOTE_CHARS else line[: _NOTE_CHARS - 1] + "…"


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return ""
    s = int(round(seconds))
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s" if s >= 60 else f"{s}s"


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def _seconds(text: str | None) -> float | None:
    """'3600', '45m', '2h', '1h30m' -> seconds."""
    if text is None:
        return None
    parts = re.findall(r"(\d+(?:\.\d+)?)([smhd]?)", text.strip())
    if not parts or "".join(n + u for n, u in parts) != text.strip().replace(" ", ""):
        raise typer.BadParameter(f"{text!r}: use seconds or a duration such as 45m, 2h, 1h30m", param_hint="--timeout")
    seconds = sum(float(n) * _UNITS[u or "s"] for n, u in parts)
    if seconds <= 0:  # 0 would read as "no deadline"
        raise typer.BadParameter(f"{text!r}: give a duration longer than 0", param_hint="--timeout")
    return seconds
