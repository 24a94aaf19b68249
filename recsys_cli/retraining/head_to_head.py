"""The candidate against production on the held-out window, user by user.

Both models are scored by the monitor's protocol (monitoring/performance.py): the
target's positives in the window, what each user had before it kept out of both
the truth and the lists, products a model never met left in the truth as its
misses. The comparison is paired, so it keeps the users both models know; users
only the candidate knows (they arrived after production's cutoff, and production
would answer them with a fallback) are counted but not compared, which leans the
gate towards keeping production.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import polars as pl

from recsys_cli.data.schema import Col
from recsys_cli.errors import RecsysError
from recsys_cli.models.base import Recommender
from recsys_cli.monitoring.performance import PerformanceError, window_scores, window_truth
from recsys_cli.splits.targets import TargetSpec


class HeadToHeadError(RecsysError):
    """The two models share no scorable user in the held-out window."""


@dataclass
class HeadToHead:
    candidate: dict[str, np.ndarray]  # metric -> per user, rows aligned with `production`
    production: dict[str, np.ndarray]
    counts: dict[str, int]


def head_to_head(
    candidate: Recommender,
    production: Recommender,
    events: pl.LazyFrame,
    start: datetime,
    end: datetime,
    target: TargetSpec,
    metrics: list[str],
) -> HeadToHead:
    """Per-user `metrics` (`ndcg@10`, ...) of both models on [start, end), on the users
    both know, in one order."""
    ks = sorted({int(m.rsplit("@", 1)[1]) for m in metrics})
    tables = []
    for label, model in (("candidate", candidate), ("production", production)):
        assert model.users is not None and model.items is not None
        try:
            truth = window_truth(events, model.users, model.items, start, end, target)
        except PerformanceError as exc:
            raise HeadToHeadError(f"held-out window, {label} model: {exc}") from None
        scores = window_scores(model, truth.users, truth.truth, ks, exclude=truth.excluded)
        unknown = [m for m in metrics if m not in scores]
        if unknown:
            raise HeadToHeadError(f"retrain.guard.metrics: {unknown[0]} is not a ranking metric (e.g. ndcg@10)")
        tokens = np.asarray(model.users.tokens, dtype=object)[truth.users].tolist()
        tables.append(
            pl.DataFrame({Col.USER: tokens, **{f"{label}:{m}": scores[m] for m in metrics}}).with_columns(
                pl.col(Col.USER).cast(pl.String)
            )
        )
    both = tables[0].join(tables[1], on=Col.USER, how="inner").sort(Col.USER)
    if both.height == 0:
        raise HeadToHeadError("held-out window: no user with a positive there is known to both models")
    counts = {
        "users_compared": both.height,
        "candidate_users": tables[0].height,
        "production_users": tables[1].height,
        "candidate_only_users": tables[0].height - both.height,
    }
    return HeadToHead(
        {m: both[f"candidate:{m}"].to_numpy() for m in metrics},
        {m: both[f"production:{m}"].to_numpy() for m in metrics},
        counts,
    )


def means(values: dict[str, np.ndarray]) -> dict[str, Any]:
    return {m: float(np.mean(v)) for m, v in values.items()}
