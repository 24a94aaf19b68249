"""Fairness summaries: which gaps and exposure shares get flagged, and which are
left out of the checks."""

from __future__ import annotations

import numpy as np
import pytest

from recsys_cli.evaluation.fairness import Thresholds, exposure_checks, flag_lines, user_gaps
from recsys_cli.evaluation.segments import UNKNOWN, UNSEEN


def rows(*groups: tuple[str, int, float]) -> list[dict[str, object]]:
    return [{"group": g, "users": n, "ndcg@10": v} for g, n, v in groups]


def test_gap_between_best_and_worst_eligible_groups() -> None:
    tables = {
        "gender": rows(("F", 100, 0.30), ("M", 120, 0.20), ("X", 5, 0.90), (UNKNOWN, 50, 0.0)),
        "activity": rows(("0", 40, 0.05), ("1-4", 60, 0.25)),
    }
    # Resampled group means: columns follow each table's rows.
    draws = {
        "gender": np.tile([0.30, 0.20, 0.90, 0.0], (50, 1)) + np.linspace(-0.01, 0.01, 50)[:, None] * [1, -1, 0, 0],
        "activity": np.tile([0.05, 0.25], (50, 1)),
    }
    gaps = {g["attribute"]: g for g in user_gaps(tables, "ndcg@10", 0.25, draws, Thresholds(min_group_users=20))}
    gender = gaps["gender"]
    # X (5 users) and unknown are left out: the gap is F against M.
    assert (gender["best"], gender["worst"], gender["groups"]) == ("F", "M", 2)
    assert gender["gap"] == pytest.approx(0.10) and gender["relative_gap"] == pytest.approx(0.4)
    # Its interval comes from the gaps between F and M in each resample (0.08 to 0.12 here).
    expected = np.percentile(draws["gender"][:, 0] - draws["gender"][:, 1], [2.5, 97.5])
    assert [gender["low"], gender["high"]] == pytest.approx(expected)
    assert gender["flagged"] and gender["threshold"] == 0.25
    # Activity differs more, but is not a checked attribute: reported, never flagged.
    assert gaps["activity"]["relative_gap"] == pytest.approx(0.8) and not gaps["activity"]["flagged"]
    assert gaps["activity"]["threshold"] is None


def test_gap_checks_can_be_switched_off_and_need_two_groups() -> None:
    tables = {"gender": rows(("F", 100, 0.30), ("M", 120, 0.20)), "region": rows(("n", 100, 0.3), ("s", 3, 0.1))}
    draws = {"gender": np.tile([0.30, 0.20], (10, 1)), "region": np.tile([0.3, 0.1], (10, 1))}
    gaps = user_gaps(tables, "ndcg@10", 0.25, draws, Thresholds(max_relative_gap=None))
    assert [g["attribute"] for g in gaps] == ["gender"] and not gaps[0]["flagged"]


def test_exposure_against_interaction_share() -> None:
    tier = [
        {"group": "head", "interaction_share": 0.5, "exposure@10": 0.8, "exposure_ratio@10": 1.6},
        {"group": "torso", "interaction_share": 0.3, "exposure@10": 0.15, "exposure_ratio@10": 0.5},
        {"group": "tail", "interaction_share": 0.195, "exposure@10": 0.05, "exposure_ratio@10": 0.05 / 0.195},
        {"group": "rare", "interaction_share": 0.005, "exposure@10": 0.0, "exposure_ratio@10": 0.0},
        {"group": UNSEEN, "interaction_share": 0.0, "exposure@10": 0.0, "exposure_ratio@10": float("nan")},
    ]
    checks = {c["group"]: c for c in exposure_checks({"popularity_tier": tier}, 10, Thresholds())}
    assert set(checks) == {"head", "torso", "tail"}  # too small a share, or never in training: not checked
    assert not checks["head"]["flagged"] and not checks["torso"]["flagged"]  # 1.6 and 0.5 lie inside [0.5, 2]
    assert checks["tail"]["flagged"] and checks["tail"]["direction"] == "under-exposed"
    strict = exposure_checks({"popularity_tier": tier}, 10, Thresholds(max_exposure_ratio=1.5))
    assert [c["direction"] for c in strict if c["flagged"]] == ["over-exposed", "under-exposed"]
    lines = flag_lines([], strict)
    assert lines[0].startswith("popularity_tier head is over-exposed at k=10: 80.0% of slots for 50.0%")
