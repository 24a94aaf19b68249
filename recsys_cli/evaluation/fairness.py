"""Fairness summaries over the segment tables, flagged against thresholds.

Two questions, each answered from numbers already computed per group:

- users: how far apart are the best- and worst-served groups of an attribute on
  the primary metric (the gap, its interval from the same user bootstrap, and
  the gap relative to the overall mean, so one threshold fits any dataset)?
- items: does each item group get a share of the recommendation slots in line
  with its share of the interactions it drew in training (exposure ratio 1), or
  is it starved (well below 1) or amplified (well above 1)?

Small groups are left out of the checks: their means are too noisy to flag.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from recsys_cli.evaluation.intervals import interval
from recsys_cli.evaluation.segments import UNKNOWN, UNSEEN


@dataclass(frozen=True)
class Thresholds:
    """When a summary is flagged; None switches a check off."""

    max_relative_gap: float | None = 0.25
    gap_attributes: Sequence[str] = field(default_factory=lambda: ["age_bucket", "gender", "region", "occupation"])
    min_group_users: int = 20
    min_exposure_ratio: float | None = 0.5
    max_exposure_ratio: float | None = 2.0
    min_interaction_share: float = 0.01


def user_gaps(
    tables: Mapping[str, Sequence[Mapping[str, Any]]],
    metric: str,
    overall: float,
    resampled: Mapping[str, np.ndarray],
    thresholds: Thresholds,
    confidence: float = 0.95,
) -> list[dict[str, Any]]:
    """Per user attribute: best and worst group on `metric` among groups of at
    least `min_group_users` users (not `unknown`), the gap between them with its
    bootstrap interval, and whether the relative gap exceeds the threshold (only
    for `gap_attributes`; activity and cold start are expected to differ).

    `resampled[name]` holds the bootstrap means of `metric` per group of that
    attribute (resamples x groups), drawn jointly with every other group.
    """
    out = []
    for name, rows in tables.items():
        eligible = [j for j, r in enumerate(rows) if r["users"] >= thresholds.min_group_users and r["group"] != UNKNOWN]
        if len(eligible) < 2:
            continue
        means = np.array([rows[j][metric] for j in eligible])
        best, worst = eligible[int(np.argmax(means))], eligible[int(np.argmin(means))]
        gap = float(means.max() - means.min())
        draws = resampled[name][:, eligible]
        with np.errstate(invalid="ignore"):
            low, high = interval(np.nanmax(draws, axis=1) - np.nanmin(draws, axis=1), confidence)
        relative = gap / overall if overall > 0 else float("nan")
        checked = name in thresholds.gap_attributes and thresholds.max_relative_gap is not None
        out.append(
            {
                "attribute": name,
                "metric": metric,
                "groups": len(eligible),
                "best": rows[best]["group"],
                "best_value": float(rows[best][metric]),
                "worst": rows[worst]["group"],
                "worst_value": float(rows[worst][metric]),
                "gap": gap,
                "low": low,
                "high": high,
                "relative_gap": relative,
                "threshold": thresholds.max_relative_gap if checked else None,
                "flagged": bool(checked and relative > thresholds.max_relative_gap),  # type: ignore[operator]
            }
        )
    return out


def exposure_checks(
    tables: Mapping[str, Sequence[Mapping[str, Any]]], k: int, thresholds: Thresholds
) -> list[dict[str, Any]]:
    """Per item group that drew at least `min_interaction_share` of training
    interactions: its exposure share at k against that interaction share, flagged
    outside [min_exposure_ratio, max_exposure_ratio]."""
    out = []
    for name, rows in tables.items():
        for row in rows:
            if row["group"] == UNSEEN or row["interaction_share"] < thresholds.min_interaction_share:
                continue
            ratio = row[f"exposure_ratio@{k}"]
            low, high = thresholds.min_exposure_ratio, thresholds.max_exposure_ratio
            under = low is not None and ratio < low
            over = high is not None and ratio > high
            out.append(
                {
                    "attribute": name,
                    "group": row["group"],
                    "k": k,
                    "exposure_share": row[f"exposure@{k}"],
                    "interaction_share": row["interaction_share"],
                    "ratio": ratio,
                    "flagged": bool(under or over),
                    "direction": "under-exposed" if under else "over-exposed" if over else None,
                }
            )
    return out


def flag_lines(gaps: Sequence[Mapping[str, Any]], exposure: Sequence[Mapping[str, Any]]) -> list[str]:
    """One sentence per flagged summary, for the terminal and the report."""
    lines = [
        f"{g['metric']} gap across {g['attribute']}: {g['best']} {g['best_value']:.4f} vs {g['worst']} "
        f"{g['worst_value']:.4f} ({g['relative_gap']:.0%} of the mean; threshold {g['threshold']:.0%})"
        for g in gaps
        if g["flagged"]
    ]
    lines += [
        f"{e['attribute']} {e['group']} is {e['direction']} at k={e['k']}: {e['exposure_share']:.1%} of slots "
        f"for {e['interaction_share']:.1%} of training interactions (ratio {e['ratio']:.2f})"
        for e in exposure
        if e["flagged"]
    ]
    return lines
