"""`recsys evaluate RUN --baseline OTHER`: the baseline's side of the error slices.

A baseline must have been scored on the run's window (same split, fold and
part), or a per-user difference would mix the models with the data. Each model
ranks in its own vocabulary, so the two are joined by user and item ids, never
by index: the compared users are those both scored, and a positive is found by
a list when its item id is among the list's top k.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np
import polars as pl
from omegaconf import DictConfig, OmegaConf

from recsys_cli.data.schema import Col
from recsys_cli.errors import ConfigError
from recsys_cli.evaluation import slices
from recsys_cli.evaluation.metrics import hits, ranking_metrics, relevant_counts
from recsys_cli.evaluation.segments import Grouping
from recsys_cli.evaluation.significance import SPLIT_DIGEST, WINDOW_KEYS, window_of
from recsys_cli.features.vocab import Vocabulary
from recsys_cli.registry.run_dir import open_run

_ROW = "_row"


def label(run: Path) -> str:
    """`<model>/<timestamp>`: the part of a run's path that tells runs apart."""
    return "/".join(Path(run).resolve().parts[-2:])


def check_baseline(run: Path, baseline: Path) -> DictConfig:
    """The baseline's verified config; refuses a baseline that is the run itself or
    was scored on another window."""
    if Path(baseline).resolve() == Path(run).resolve():
        raise ConfigError(f"--baseline {baseline}: the run itself; a baseline is another run of the same window")
    (ours, _), (theirs, config) = _window(run), _window(baseline)
    for key in WINDOW_KEYS:
        if ours.get(key) != theirs.get(key):
            raise ConfigError(
                f"--baseline: {label(baseline)} is not of {label(run)}'s window ({key} is {theirs.get(key)!r} "
                f"there, {ours.get(key)!r} here); a baseline must share the run's split, fold and part"
            )
    return config


def _window(path: Path) -> tuple[dict[str, Any], DictConfig]:
    run = open_run(path)  # files, seal and data checked; the split's digest pairs runs
    plain = cast(dict[str, Any], OmegaConf.to_container(run.config, resolve=True))
    return window_of({**plain, SPLIT_DIGEST: run.split_digest}), run.config


@dataclass(frozen=True)
class Side:
    """One model's lists on the window, in its own vocabulary."""

    user_ids: pl.Series  # evaluated users, sorted; rows of recs and metric
    pairs: pl.DataFrame  # the window's (user_id, item_id) positives
    recs: np.ndarray  # (users, >= k) item indices, best first
    hit: np.ndarray  # (users, >= k) True where the slot is a positive
    items: Vocabulary
    metric: np.ndarray  # (users,) the compared per-user metric


def side(
    user_ids: pl.Series, pairs: pl.DataFrame, recs: np.ndarray, truth: Any, items: Vocabulary, metric: str
) -> Side:
    """A list's hits and its per-user `metric` (ndcg@10...), as the evaluation computes them."""
    k = int(metric.partition("@")[2])
    hit = hits(recs[:, :k], truth)
    values = ranking_metrics(hit, relevant_counts(truth), [k])[metric]
    return Side(user_ids, pairs, recs[:, :k], hit, items, values)


def compare(
    model: Side,
    baseline: Side,
    user_groups: list[Grouping],
    item_groups: list[Grouping],
    *,
    min_users: int,
    resamples: int,
    seed: int,
    confidence: float,
) -> dict[str, Any]:
    """The `slices` section of the summary: model - baseline on the users both scored."""
    rows_a = np.flatnonzero(model.user_ids.is_in(baseline.user_ids.implode()).to_numpy())
    rows_b = np.flatnonzero(baseline.user_ids.is_in(model.user_ids.implode()).to_numpy())
    if rows_a.size == 0:
        raise ConfigError("--baseline: the run and its baseline share no evaluated user")
    shared = model.user_ids.gather(rows_a)
    result = slices.error_slices(
        model.metric[rows_a],
        baseline.metric[rows_b],
        [Grouping(g.name, g.labels, g.codes[rows_a]) for g in user_groups],
        positives(shared, model, baseline, rows_a, rows_b),
        item_groups,
        min_users=min_users,
        resamples=resamples,
        seed=seed,
        confidence=confidence,
    )
    k = model.recs.shape[1]
    return {
        "users": {
            "compared": int(rows_a.size),
            "left_out": int(model.user_ids.len() - rows_a.size + baseline.user_ids.len() - rows_b.size),
            "only_model": int(model.user_ids.len() - rows_a.size),
            "only_baseline": int(baseline.user_ids.len() - rows_b.size),
        },
        "item_metric": f"recall@{k}",
        "min_users": min_users,
        "overall": result.overall.to_json(),
        "rows": [s.to_json() for s in result.slices],
    }


def positives(
    shared: pl.Series, model: Side, baseline: Side, rows_a: np.ndarray, rows_b: np.ndarray
) -> slices.Positives:
    """The shared users' window positives, each with the model's item index (the
    item groupings' rows) and whether each list's top k found it, joined by ids."""
    users = pl.DataFrame({Col.USER: shared}).with_row_index(_ROW)
    frame = (
        model.pairs.select(Col.USER, pl.col(Col.ITEM).cast(pl.String))
        .unique()
        .join(users, on=Col.USER)
        .join(_found(model, rows_a, "found_model"), on=[_ROW, Col.ITEM], how="left")
        .join(_found(baseline, rows_b, "found_baseline"), on=[_ROW, Col.ITEM], how="left")
        .select(_ROW, model.items.encode(Col.ITEM), pl.col("found_model", "found_baseline").fill_null(False))
    )
    return slices.Positives(
        user=frame[_ROW].to_numpy().astype(np.int64),
        item=frame[Col.ITEM].to_numpy().astype(np.int64),
        found_model=frame["found_model"].to_numpy(),
        found_baseline=frame["found_baseline"].to_numpy(),
    )


def _found(s: Side, rows: np.ndarray, name: str) -> pl.DataFrame:
    """(shared row, item id) of every positive in the list's top k."""
    row, slot = np.nonzero(s.hit[rows])
    tokens = pl.Series(s.items.tokens, dtype=pl.String)
    return pl.DataFrame(
        {_ROW: pl.Series(row, dtype=pl.UInt32), Col.ITEM: tokens.gather(s.recs[rows][row, slot]), name: True}
    )
