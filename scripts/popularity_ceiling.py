"""How far popularity alone can go on the P2 rolling-origin windows, future included.

P2's bar asks for 1.35x the NDCG@10 of 30-day popularity. This script scores,
on the very windows and users the benchmark evaluates (every warm user of each
fold's validation and test window, items they rated before the window left out),
rankings that no model can make because they read the window itself:

- `window_popularity`: the films ranked by how many ratings they get inside the
  window, the user's own included (an upper bound of any popularity signal);
- `window_popularity_others`: the same counts without the user's own ratings, what
  the rest of the site did in those 14 days;
- `window_popularity_returning`: only the ratings of the window's other warm
  users, the members the benchmark scores (most of a window's ratings come from
  members who joined inside it);

beside two a model can make: `recent_popularity_30d` (the 30 days before the
window) and `recent_popularity_30d_short_visits`, the same counted only over
ratings made in short visits (a user's ratings cut wherever an hour passes
without one, as seen before the window; at most 20 ratings a visit): what
returning members do, not what new members rate when they join. Every ranking
is one score per film for all users, so what they reach is the ceiling of a
non-personal list: where the window's own popularity stays under 1.35x, the bar
can only be met by knowing the user better than the window's crowd.

    .venv/bin/python scripts/popularity_ceiling.py --data-dir bench_data/ml20
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import polars as pl
import scipy.sparse as sp
import typer

from recsys_cli.console import console, rows_table
from recsys_cli.evaluation.metrics import per_user

K = 10
RANKINGS = (
    "recent_popularity_30d",
    "recent_popularity_30d_short_visits",
    "window_popularity_returning",
    "window_popularity_others",
    "window_popularity",
)
VISIT_GAP = timedelta(hours=1)  # a pause this long starts a new visit
SHORT_VISIT = 20  # most ratings in a visit that counts as short


def window_scores(events: pl.DataFrame, start: datetime, end: datetime, truth: pl.DataFrame) -> dict[str, np.ndarray]:
    """Per ranking, NDCG@10 of each of `truth`'s users (rows in `truth`'s user order)."""
    users = truth.select("user_id").unique(maintain_order=True)
    items = events.select("item_id").unique().sort("item_id").with_row_index("col")
    rows = users.with_row_index("row")

    def matrix(frame: pl.DataFrame) -> sp.csr_matrix:
        pairs = frame.select("user_id", "item_id").unique().join(rows, on="user_id").join(items, on="item_id")
        ones = np.ones(pairs.height)
        return sp.csr_matrix((ones, (pairs["row"], pairs["col"])), shape=(users.height, items.height))

    before = with_visit_sizes(events.filter(pl.col("ts") < start))
    inside = events.filter((pl.col("ts") >= start) & (pl.col("ts") < end))
    seen = matrix(before).toarray() > 0
    own = matrix(inside).toarray()
    month = before.filter(pl.col("ts") >= start - timedelta(days=30))
    window = _counts(inside, items)
    returning = _counts(inside.join(users, on="user_id", how="semi"), items)
    rankings = {
        "recent_popularity_30d": _counts(month, items),
        "recent_popularity_30d_short_visits": _counts(month.filter(pl.col("visit_size") <= SHORT_VISIT), items),
        "window_popularity_returning": returning - own,
        "window_popularity_others": window - own,
        "window_popularity": window,
    }
    # Equal counts go by all-time popularity before the window (a fraction under one
    # rating), as the benchmark's popularity models break them, then by item id.
    alltime = _counts(before, items)
    tie_break = alltime / (alltime.max(initial=0) + 1)
    relevant = matrix(truth)
    out = {}
    for name in RANKINGS:
        scores = np.broadcast_to(rankings[name] + tie_break, own.shape)
        ranked = np.where(seen, -np.inf, scores)
        top = np.argsort(-ranked, axis=1, kind="stable")[:, :K]
        out[name] = per_user(top, relevant, K)["ndcg"]
    return out


def with_visit_sizes(events: pl.DataFrame) -> pl.DataFrame:
    """Each rating with the number of ratings in its visit: a user's ratings in time
    order, a new visit wherever `VISIT_GAP` passes without one."""
    gap = pl.col("ts").diff().over("user_id", order_by="ts") >= VISIT_GAP
    visit = gap.fill_null(True).cast(pl.UInt32).cum_sum().over("user_id", order_by="ts")
    return (
        events.with_columns(visit.alias("_visit"))
        .with_columns(pl.len().over("user_id", "_visit").alias("visit_size"))
        .drop("_visit")
    )


def _counts(frame: pl.DataFrame, items: pl.DataFrame) -> np.ndarray:
    counts = items.join(frame.group_by("item_id").len(), on="item_id", how="left").sort("col")
    return counts["len"].fill_null(0).to_numpy().astype(np.float64)


def main(
    data_dir: Annotated[
        Path, typer.Option(help="the benchmark's folder (scripts/bench_movielens.py --data-dir)")
    ] = Path("bench_data/ml20"),
    split: Annotated[str, typer.Option(help="the split folder under splits/movielens100k")] = "rolling_origin-ratings",
    out: Annotated[Path | None, typer.Option(help="the JSON; default <data-dir>/popularity-ceiling.json")] = None,
) -> None:
    root = data_dir / "splits" / "movielens100k" / split
    manifest = json.loads((root / "manifest.json").read_text())
    events = (
        pl.scan_parquet(data_dir / "lake" / "movielens100k" / "events" / "**" / "*.parquet")
        .filter(pl.col("event_type") == "rating")
        .select("user_id", "item_id", "ts")
        .collect()
    )
    result: dict[str, Any] = {"split": str(root), "k": K, "windows": []}
    pooled: dict[str, dict[str, list[float]]] = {"val": {}, "test": {}}
    for fold in manifest["folds"]:
        bounds = {
            "val": (fold["val_start"], fold["test_start"]),
            "test": (fold["test_start"], fold["test_end"]),
        }
        for part, (start, end) in bounds.items():
            truth = pl.read_parquet(root / fold["name"] / f"{part}_targets.parquet").filter(~pl.col("cold"))
            scores = window_scores(events, datetime.fromisoformat(start), datetime.fromisoformat(end), truth)
            result["windows"].append(
                {"fold": fold["name"], "part": part, "users": truth["user_id"].n_unique()}
                | {name: float(v.mean()) for name, v in scores.items()}
            )
            for name, v in scores.items():
                pooled[part].setdefault(name, []).append(float(v.mean()))
    rows = []
    for part in ("val", "test"):
        means = {name: float(np.mean(v)) for name, v in pooled[part].items()}
        base = means["recent_popularity_30d"]
        result[f"mean_{part}"] = means
        for name in RANKINGS:
            rows.append([part, name, f"{means[name]:.4f}", f"{means[name] / base:.3f}x"])
    console.print(
        rows_table(
            "Popularity on P2's windows, the window's own included (mean over folds, warm users)",
            ["part", "ranking", "NDCG@10", "vs 30-day popularity"],
            rows,
        )
    )
    path = out or data_dir / "popularity-ceiling.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    console.print(f"wrote {path}")


if __name__ == "__main__":
    typer.run(main)
