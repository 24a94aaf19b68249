"""From sessions to the report's numbers: coverage at equal arm sizes, daily looks
that end where the final estimate is, and power in days of traffic."""

from __future__ import annotations

from itertools import combinations

import numpy as np
import pytest

from recsys_cli.abtest.assignment import CONTROL, TREATMENT
from recsys_cli.abtest.experiment import (
    compare_arms,
    compare_coverage,
    daily_looks,
    incidence,
    power_report,
    rarefied_coverage,
    user_totals,
)
from recsys_cli.abtest.stats import Estimate


def test_rarefied_coverage_is_the_mean_over_every_subset_of_users() -> None:
    rng = np.random.default_rng(0)
    slates = rng.integers(0, 12, (7, 3))
    shown = incidence(slates, 12).toarray() > 0
    for m in (1, 3, 6):
        brute = np.mean([shown[list(rows)].any(axis=0).sum() / 12 for rows in combinations(range(7), m)])
        assert rarefied_coverage(shown.sum(axis=0), n=7, m=m).sum() / 12 == pytest.approx(brute)


def test_one_policy_in_arms_of_different_sizes_has_the_same_coverage() -> None:
    rng = np.random.default_rng(1)
    n_users, n_items = 3_000, 20_000
    # Each user gets 10 draws from a long-tailed (Zipf) catalogue, so distinct items
    # keep growing with the number of users (a repeated draw shows once).
    cdf = np.cumsum(1 / np.arange(1, n_items + 1))
    slate = np.searchsorted(cdf, rng.random((n_users, 10)) * cdf[-1])
    arm = np.where(rng.random(n_users) < 0.75, CONTROL, TREATMENT)  # 3:1 split
    raw = [(incidence(slate[arm == a], n_items).sum(axis=0) > 0).mean() for a in (CONTROL, TREATMENT)]
    assert raw[0] > raw[1] + 0.03  # counted naively, the bigger arm looks more diverse
    result = compare_coverage([slate, slate], arm, n_items, confidence=0.95)
    assert not result.lift.significant and abs(result.lift.relative) < 0.03
    assert result.control.low < result.control.value < result.control.high
    narrow = np.tile(np.arange(10), (n_users, 1))  # the same ten items for everyone
    wide = compare_coverage([narrow, slate], arm, n_items, confidence=0.95)
    assert wide.control.value == pytest.approx(10 / n_items) and wide.lift.significant and wide.lift.difference > 0


def test_the_last_daily_look_is_the_final_estimate() -> None:
    rng = np.random.default_rng(2)
    n_users, n_days = 400, 7
    user = rng.integers(0, n_users, 1_500)
    day = rng.integers(0, n_days, user.size)
    orders = (rng.random(user.size) < 0.1).astype(float)
    arm = np.where(np.arange(n_users) % 2 == 0, CONTROL, TREATMENT)
    arm[np.setdiff1d(np.arange(n_users), user)] = CONTROL  # users without sessions never count
    looks = daily_looks(user, day, orders, np.ones(user.size), arm, n_days)
    totals = user_totals(user, {"orders": orders, "sessions": np.ones(user.size)}, n_users)
    arrived = totals["sessions"] > 0
    control = compare_arms(
        {
            **{k: v[arrived] for k, v in totals.items()},
            **{name: np.zeros(arrived.sum()) for name in ("impressions", "clicks", "carted_sessions", "revenue")},
        },
        arm[arrived],
        confidence=0.95,
        power=0.8,
    )
    conversion = next(c for c in control if c.metric == "conversion")
    assert looks.control[-1] == pytest.approx(conversion.control.value)
    assert looks.control_variance[-1] == pytest.approx(conversion.control.variance)
    assert looks.n_treatment[-1] == conversion.treatment.units
    assert np.all(np.diff(looks.n_control) >= 0) and looks.n_control[0] > 0


def test_power_report_counts_days_of_traffic() -> None:
    control = Estimate(0.1, 0.3**2 / 1_000, 0, 0, 1_000)  # per-user sd 0.3
    arrivals = np.cumsum(np.full(20, 500))  # 500 new users a day
    report = power_report(control, 0.2, 0.05, 0.8, 0.5, 2_500, 2_500, arrivals)
    per_arm = 2 * (1.959964 + 0.841621) ** 2 * 0.3**2 / 0.02**2  # 3531.7
    assert report["users_needed_control"] == report["users_needed_treatment"] == int(np.ceil(per_arm))
    assert report["days_needed"] == int(np.ceil(2 * per_arm / 500))  # both arms' users, 500 a day
    assert report["achieved_power"] < 0.8 and report["mde_relative"] > 0.2
    short = power_report(control, 0.2, 0.05, 0.8, 0.5, 250, 250, arrivals[:1])
    assert short["days_needed"] is None and short["days_needed_extrapolated"] == int(np.ceil(2 * per_arm / 500))
