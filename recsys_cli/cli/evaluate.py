"""`recsys evaluate RUN`: relevance, breadth, fairness and calibration of a trained
run, each with its uncertainty."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from recsys_cli.cli._errors import friendly_errors
from recsys_cli.cli._options import DEFAULT_CONFIG_DIR, ConfigDir
from recsys_cli.console import esc

_BEYOND = (
    ("coverage", "coverage"),
    ("gini", "Gini of exposure"),
    ("novelty", "novelty (bits)"),
    ("diversity", "diversity (category)"),
    ("popularity", "mean popularity"),
    ("popularity_lift", "popularity lift"),
    ("new_items", "new products"),
)


@friendly_errors
def evaluate(
    run: Annotated[Path, typer.Argument(metavar="RUN", help="Run folder written by `recsys train`.")],
    overrides: Annotated[
        list[str] | None,
        typer.Argument(
            help="Hydra overrides, e.g. part=test eval.ks=[10,50] eval.bootstrap.resamples=2000", show_default=False
        ),
    ] = None,
    baseline: Annotated[
        Path | None,
        typer.Option(
            "--baseline",
            metavar="RUN",
            help="Another run of the same split, fold and part: adds the error slices where RUN loses to it.",
            show_default=False,
        ),
    ] = None,
    config_dir: ConfigDir = DEFAULT_CONFIG_DIR,
) -> None:
    """Score a run on every user of its window, with intervals, slices and an HTML report.

    Full ranking: NDCG, recall, precision, hit rate, MRR and MAP at several k;
    coverage, Gini, novelty, diversity, popularity and new products; metrics per user
    segment and item group with fairness flags; calibration of engagement
    probabilities; bootstrap intervals over users.

    With --baseline OTHER_RUN, also the users and items where RUN loses most against
    it: paired per-user differences of the primary metric by user segment (activity,
    cold start, demographics) and by item group (recall of the window's positives by
    popularity tier, category, new products), biggest losses first.

    Writes RUN/eval/<part>/: metrics.json, report.html (plots embedded), per_user.parquet.

    Example: recsys evaluate runs/ease/20260301T091500000000Z --baseline runs/popularity/20260301T090000000000Z
    """
    from recsys_cli.config import compose
    from recsys_cli.console import console, rich_progress
    from recsys_cli.tasks import evaluate as task

    if not run.is_dir():
        from recsys_cli.errors import ConfigError

        raise ConfigError(f"{run}: no such run folder")
    cfg = compose("evaluate", overrides, config_dir)
    with rich_progress() as reporter:
        result = task.run(run, cfg, reporter=reporter, baseline=baseline)
    for table in _tables(result.summary):
        console.print(table)
    if "slices" in result.summary:
        console.print(_slices(result.summary["slices"]))
    for line in result.summary["flags"]:
        console.print(f"[bold red]flag:[/] {esc(line)}", highlight=False, soft_wrap=True)
    console.print(f"[green]evaluation written:[/] {result.folder} (report.html, metrics.json, per_user.parquet)")


def _tables(s: dict[str, Any]) -> list[Any]:
    from recsys_cli.console import rows_table

    ks, users, boot = s["ks"], s["users"], s["bootstrap"]
    level = f"{boot['confidence']:.0%}"
    title = (
        f"{s['model']} on {s['part']}: {users['evaluated']:,} users ({users['cold_start']:,} cold-start); "
        f"{level} intervals from {boot['resamples']:,} user resamples"
    )
    header = ["metric", *(f"@{k}" for k in ks)]
    ranking = [[m, *(_cell(s["headline"][f"{m}@{k}"]) for k in ks)] for m in _ranking_names()]
    beyond = []
    for key, label in _BEYOND:
        cells = [_beyond_cell(s, f"{key}@{k}") for k in ks]
        if any(cells):
            beyond.append([label, *cells])
    tables = [rows_table(title, header, ranking), rows_table("Beyond accuracy", header, beyond)]
    tables.append(_calibration(s))
    tables.append(_segments(s))
    tables.append(_items(s))
    gaps = s["fairness"]["user_gaps"]
    if gaps:
        tables.append(_gaps(s, gaps))
    return tables


def _ranking_names() -> tuple[str, ...]:
    from recsys_cli.evaluation.metrics import RANKING_METRICS

    return RANKING_METRICS


def _cell(interval: dict[str, Any]) -> str:
    return f"{_num(interval['value'])} [{_num(interval['low'], 3)}, {_num(interval['high'], 3)}]"


def _beyond_cell(s: dict[str, Any], key: str) -> str:
    value = s["headline"].get(key) or s["beyond"].get(key)
    if value is None:
        return ""
    return _cell(value) if isinstance(value, dict) else _num(value)


def _num(value: Any, digits: int = 4) -> str:
    return "–" if value is None or value != value else f"{value:.{digits}f}"


def _pct(value: Any) -> str:
    return "–" if value is None or value != value else f"{value:.1%}"


def _calibration(s: dict[str, Any]) -> Any:
    from recsys_cli.console import kv_table

    cal = s["calibration"]
    if not cal.get("available"):
        return kv_table("Calibration", {"available": "no", "why": cal.get("note", "")})
    rows = {"ECE": _num(cal["ece"]), "slots": f"{cal['pairs']:,}", "users": f"{cal['users']:,}"}
    for key, label in (
        ("brier", "Brier"),
        ("log_loss", "log loss"),
        ("predicted", "mean predicted"),
        ("observed", "observed rate"),
    ):
        rows[label] = _cell(cal[f"{key}_interval"])
    return kv_table("Calibration of engagement probabilities (recommended slots)", rows)


def _segments(s: dict[str, Any]) -> Any:
    from recsys_cli.console import rows_table

    metric = s["primary"]
    k = metric.partition("@")[2]
    extra = [f"recall@{k}", f"hitrate@{k}", f"novelty@{k}"]
    rows = [
        [
            name,
            esc(r["group"]),
            f"{r['users']:,}",
            f"{_num(r[metric])} [{_num(r[f'{metric}_low'], 3)}, {_num(r[f'{metric}_high'], 3)}]",
            *(_num(r.get(c)) for c in extra),
        ]
        for name, table in s["segments"]["users"].items()
        for r in table
        if r["users"] > 0
    ]
    return rows_table("Users by segment", ["segment", "group", "users", metric, *extra], rows)


def _items(s: dict[str, Any], limit: int = 12) -> Any:
    from recsys_cli.console import rows_table

    k = s["primary"].partition("@")[2]
    rows = []
    for name, table in s["segments"]["items"].items():
        ordered = sorted(table, key=lambda r: -r["interaction_share"])
        for r in ordered[:limit]:
            rows.append(
                [
                    name,
                    esc(r["group"]),
                    f"{r['items']:,}",
                    _pct(r["interaction_share"]),
                    _pct(r[f"exposure@{k}"]),
                    _num(r[f"exposure_ratio@{k}"], 2),
                    _num(r[f"recall@{k}"]),
                ]
            )
        if len(ordered) > limit:
            rows.append([name, f"... {len(ordered) - limit} more in metrics.json", "", "", "", "", ""])
    header = ["items by", "group", "items", "training share", f"exposure@{k}", "ratio", f"recall@{k}"]
    return rows_table("Exposure by item group", header, rows)


def _gaps(s: dict[str, Any], gaps: list[dict[str, Any]]) -> Any:
    from recsys_cli.console import rows_table

    rows = [
        [
            g["attribute"],
            f"{esc(g['best'])} {_num(g['best_value'])}",
            f"{esc(g['worst'])} {_num(g['worst_value'])}",
            f"{_num(g['gap'])} [{_num(g['low'], 3)}, {_num(g['high'], 3)}]",
            _pct(g["relative_gap"]),
            "[red]FLAG[/]" if g["flagged"] else "",
        ]
        for g in gaps
    ]
    header = ["attribute", "best", "worst", "gap [interval]", "relative", ""]
    return rows_table(f"Largest {s['primary']} gap between user groups", header, rows)


def _slices(s: dict[str, Any], limit: int = 15) -> Any:
    from recsys_cli.console import rows_table

    users, overall = s["users"], s["overall"]
    title = (
        f"Error slices against {esc(s['baseline']['label'])} ({esc(s['baseline']['model'])}): "
        f"{s['metric']} {_num(overall['mean_a'])} vs {_num(overall['mean_b'])}, difference "
        f"{_num(overall['difference'])} [{_num(overall['low'], 3)}, {_num(overall['high'], 3)}] on "
        f"{users['compared']:,} shared users ({users['left_out']:,} left out); item slices by {s['item_metric']}"
    )
    rows = [
        [
            f"{r['kind']}: {r['by']}",
            esc(r["group"]),
            f"{r['users']:,}",
            "" if r["positives"] is None else f"{r['positives']:,}",
            _num(r["model"]),
            _num(r["baseline"]),
            f"{_num(r['difference'])} [{_num(r['low'], 3)}, {_num(r['high'], 3)}]",
            "[red]LOSES[/]" if r["verdict"] == "loses" else r["verdict"],
        ]
        for r in s["rows"][:limit]
    ]
    if len(s["rows"]) > limit:
        rows.append(["", f"... {len(s['rows']) - limit} more in metrics.json", "", "", "", "", "", ""])
    header = ["slice", "group", "users", "positives", "model", "baseline", "difference [interval]", ""]
    return rows_table(title, header, rows)
