"""`recsys explain RUN`: feature importance, partial dependence and the engagement
probabilities' curves of a two-stage ranker."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from recsys_cli.cli._errors import friendly_errors
from recsys_cli.cli._options import DEFAULT_CONFIG_DIR, ConfigDir, SharedOverrides, chain_config, seed_of
from recsys_cli.console import esc


@friendly_errors
def explain(
    run: Annotated[Path, typer.Argument(metavar="RUN", help="Run folder of a two-stage ranker (`recsys train`).")],
    out: Annotated[Path | None, typer.Option("--out", help="Output folder [RUN/explain/<part>].")] = None,
    top: Annotated[int, typer.Option("--top", min=1, help="Features drawn, tabled and kept per prediction.")] = 8,
    users: Annotated[int, typer.Option("--users", min=1, help="Window users sampled for candidate pairs.")] = 500,
    seed: Annotated[
        int | None,
        typer.Option(
            "--seed", min=0, help="Seed of the user sample, shuffles and curves [seed= of the overrides, else 0]."
        ),
    ] = None,
    part: Annotated[str | None, typer.Option("--part", help="Window: val or test [the run's own].")] = None,
    k: Annotated[int, typer.Option("--k", min=1, help="Each user's top-k predictions broken down.")] = 10,
    overrides: SharedOverrides = None,
    config_dir: ConfigDir = DEFAULT_CONFIG_DIR,
) -> None:
    """Why a two-stage ranker ranks as it does, on labelled candidate pairs of its window.

    Feature importance (LightGBM gain and split counts, mean |contribution| from
    pred_contrib, and for any backend the NDCG@10 drop when a feature is shuffled),
    partial dependence of the calibrated probability on the top features, and the
    precision-recall and reliability curves of the engagement probabilities.

    Writes RUN/explain/<part>/: explain.json, report.html, contributions.parquet
    (each sampled user's top-k predictions broken down by feature), plots/.

    The chain's shared overrides are checked; of them only seed= is used, when --seed
    is not given. The run's own config says where its data is.

    Example: recsys explain runs/twostageranker/20260301T090000000000Z --top 12
    """
    from recsys_cli.console import console, rich_progress
    from recsys_cli.evaluation.explain import Settings
    from recsys_cli.tasks import explain as task

    chain = chain_config("explain", overrides, config_dir)
    settings = Settings(top=top, k=k, seed=seed_of(chain, overrides, 0) if seed is None else seed)
    options = task.Options(part=part, out_dir=out, users=users, settings=settings)
    with rich_progress() as reporter:
        result = task.run(run, options, reporter=reporter)
    for table in _tables(result.summary, top):
        console.print(table)
    for note in result.summary["notes"]:
        console.print(f"[yellow]note:[/] {esc(note)}", highlight=False, soft_wrap=True)
    console.print(
        f"[green]explanation written:[/] {esc(result.folder)} (report.html, explain.json, contributions.parquet)"
    )


_COLUMNS = (
    ("gain_share", "gain", "pct"),
    ("split_share", "splits", "pct"),
    ("contribution_share", "|contrib.|", "pct"),
    ("permutation_ndcg_drop", "NDCG@10 drop", "num"),
    ("permutation_log_loss_rise", "log-loss rise", "num"),
)


def _tables(s: dict[str, Any], top: int) -> list[Any]:
    from recsys_cli.console import kv_table, rows_table

    rows = s["importance"][:top]
    present = [c for c in _COLUMNS if rows and c[0] in rows[0]]
    body = [[esc(r["feature"]), *(_format(r[key], how) for key, _, how in present)] for r in rows]
    pairs = s["pairs"]
    title = (
        f"Top {len(rows)} features of {s['model']} ({s['backend']}) on {s['part']}, by {s['ranked_by']}: "
        f"{pairs['pairs']:,} candidate pairs of {pairs['users']:,} users"
    )
    features = rows_table(title, ["feature", *(label for _, label, _ in present)], body)
    features.columns[0].no_wrap = True  # names stay whole and copyable; the numbers wrap first
    tables = [features]
    pr, cal = s["precision_recall"], s["calibration"]
    figures = {
        "average precision": _format(pr.get("average_precision"), "num"),
        "base rate": _format(pr.get("base_rate"), "num"),
    }
    if cal.get("available"):
        figures |= {"ECE": _format(cal["ece"], "num"), "Brier": _format(cal["brier"], "num")}
    tables.append(kv_table("Engagement probabilities of the candidate pairs", figures))
    return tables


def _format(value: Any, how: str) -> str:
    if value is None or value != value:
        return "–"
    return f"{value:.1%}" if how == "pct" else f"{value:.4f}"
