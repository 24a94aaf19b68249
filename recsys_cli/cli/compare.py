"""`recsys compare`: are the differences between runs real, once the number of
comparisons is taken into account?"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from recsys_cli.cli._errors import friendly_errors
from recsys_cli.cli._options import DEFAULT_CONFIG_DIR, ConfigDir, chain_config, seed_of, split_overrides
from recsys_cli.console import esc

if TYPE_CHECKING:
    from rich.table import Table

_VERDICT_STYLE = {"better": "green", "worse": "red", "mixed": "yellow"}


def _open_unit(value: float) -> float:
    """0 would ask for intervals covering everything, 1 for intervals of nothing."""
    if not 0 < value < 1:
        raise typer.BadParameter(f"{value:g} is not strictly between 0 and 1")
    return value


@friendly_errors
def compare(
    args: Annotated[
        list[str],
        typer.Argument(
            metavar="RUN|OVERRIDE",
            help="Run folders of one window, the first the control; then any of the chain's shared keys "
            "(conf/chain.yaml), e.g. seed=7.",
            show_default=False,
        ),
    ],
    metric: Annotated[str, typer.Option("--metric", help="Per-user metric column, e.g. recall@20.")] = "ndcg@10",
    resamples: Annotated[int, typer.Option("--resamples", min=1, max=1_000_000, help="Bootstrap resamples.")] = 10_000,
    alpha: Annotated[
        float,
        typer.Option(
            "--alpha", callback=_open_unit, help="Family-wise error rate, in (0, 1); intervals are at 1 - alpha."
        ),
    ] = 0.05,
    all_pairs: Annotated[
        bool, typer.Option("--all-pairs", help="Compare every pair, not each run vs the first.")
    ] = False,
    seed: Annotated[
        int | None, typer.Option("--seed", min=0, help="Bootstrap seed [seed= of the overrides, else 0].")
    ] = None,
    out: Annotated[
        Path | None, typer.Option("--out", help="Output JSON [<runs root>/comparisons/<timestamp>.json].")
    ] = None,
    config_dir: ConfigDir = DEFAULT_CONFIG_DIR,
) -> None:
    """Paired significance tests between runs of one window, on the users all of them scored.

    Each comparison gets a bootstrap interval of the mean per-user difference and a
    Wilcoxon signed-rank p, with Holm's correction over all comparisons. Rankers that
    differ by model.ablate also get an Ablations table (docs/ablations.md).

    The chain's shared overrides are checked; of them only seed= is used, as the
    bootstrap seed when --seed is not given.

    Example: recsys compare runs/popularity/20260301T090000000000Z
    runs/ease/20260301T091500000000Z --metric recall@20
    """
    from recsys_cli.console import console, rows_table
    from recsys_cli.tasks import compare as task

    names, overrides = split_overrides(args)
    if not names:
        raise typer.BadParameter("give at least one run folder", param_hint="RUN...")
    runs = [Path(name) for name in names]
    chain = chain_config("compare", overrides, config_dir)
    bootstrap_seed = seed_of(chain, overrides, 0) if seed is None else seed
    result = task.run(runs, metric, resamples, bootstrap_seed, alpha, all_pairs, out)
    console.print(_users_line(result), highlight=False)
    title = f"{metric} on {result['shared_users']:,} shared users ({result['window'].get('part')})"
    header, rows = _pairs_rows(result) if all_pairs else _control_rows(result)
    table = rows_table(title, header, rows)
    for column in table.columns[: 2 if all_pairs else 1]:
        column.no_wrap, column.justify = True, "left"  # run labels stay whole and copyable; numbers wrap first
    console.print(table)
    console.print(result["summary"], highlight=False, soft_wrap=True)
    if "ablations" in result:
        console.print(_ablations_table(result))
    console.print(f"[green]comparison written:[/] {result['output']}")


_ABLATION_STYLE = {"matters": "green", "helps to drop": "yellow"}


def _ablations_table(result: dict[str, Any]) -> Table:
    """Each ablated run against the full one: what it dropped, the mean difference
    with its paired interval, and what that says about the dropped part."""
    from recsys_cli.console import rows_table

    ablations, level = result["ablations"], f"{result['confidence']:.0%}"
    title = f"Ablations: {result['metric']} against {ablations['full']}"
    if ablations["full_ablate"]:
        title += f" (itself without {', '.join(ablations['full_ablate'])})"
    header = ["run", "dropped", "mean", f"Δ vs full [{level}]", "verdict"]
    rows = []
    for row in ablations["rows"]:
        style = _ABLATION_STYLE.get(row["verdict"])
        rows.append(
            [
                esc(row["run"]),
                esc(", ".join(row["dropped"]) or "nothing"),
                f"{row['mean']:.4f}",
                f"{row['difference']:+.4f} [{row['low']:+.4f}, {row['high']:+.4f}]",
                f"[{style}]{row['verdict']}[/]" if style else row["verdict"],
            ]
        )
    table = rows_table(title, header, rows)
    table.columns[0].no_wrap = True
    table.columns[1].justify = "left"
    return table


def _users_line(result: dict[str, Any]) -> str:
    """How many users each run scored and how many all share: only those are compared."""
    counts = ", ".join(f"{run['label']} {run['users']:,}" for run in result["runs"])
    return f"users per run: {counts}; shared by all: {result['shared_users']:,} (only these are compared)"


_TESTS = ["bootstrap", "Wilcoxon p", "Holm p", "verdict"]


def _control_rows(result: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    level = f"{result['confidence']:.0%}"
    header = ["run", "users", "mean", f"Δ vs control [{level}]", f"relative [{level}]", *_TESTS]
    runs = result["runs"]
    rows = [[esc(runs[0]["label"]), f"{runs[0]['users']:,}", f"{runs[0]['mean']:.4f}", "control", "", "", "", "", ""]]
    for run, c in zip(runs[1:], result["comparisons"], strict=True):
        rows.append([esc(run["label"]), f"{run['users']:,}", f"{run['mean']:.4f}", *_test_cells(c)])
    return header, rows


def _pairs_rows(result: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    level = f"{result['confidence']:.0%}"
    header = ["run", "vs run", "means", f"Δ [{level}]", f"relative [{level}]", *_TESTS]
    rows = [
        [esc(c["candidate"]), esc(c["reference"]), f"{c['mean_a']:.4f} vs {c['mean_b']:.4f}", *_test_cells(c)]
        for c in result["comparisons"]
    ]
    return header, rows


def _test_cells(c: dict[str, Any]) -> list[str]:
    style = _VERDICT_STYLE.get(c["verdict"])
    verdict = f"[{style}]{c['verdict']}[/]" if style else c["verdict"]
    return [
        f"{c['difference']:+.4f} [{c['low']:+.4f}, {c['high']:+.4f}]",
        _relative(c),
        c["interval"],
        _p(c["wilcoxon_p"]),
        _p(c["holm_p"]),
        verdict,
    ]


def _relative(c: dict[str, Any]) -> str:
    if c["relative"] is None:
        return "n/a"  # the reference's mean is 0
    low = "?" if c["relative_low"] is None else f"{c['relative_low']:+.1%}"
    high = "?" if c["relative_high"] is None else f"{c['relative_high']:+.1%}"
    return f"{c['relative']:+.1%} [{low}, {high}]"


def _p(p: float) -> str:
    return "<0.0001" if p < 1e-4 else f"{p:.4f}"
