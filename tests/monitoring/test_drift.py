"""Data drift (recsys_cli/monitoring/drift.py): PSI, JS and the tests on binned counts
worked out by hand, and the alert rule held to its promise over many seeds. An
unshifted window raises an alarm in at most 5% of seeds. A planted shift is
flagged in at least 95% of them, and the features that did not move stay quiet."""

from __future__ import annotations

import json
import math
from dataclasses import fields
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest
from omegaconf import OmegaConf
from pydantic import ValidationError
from scipy import stats
from scipy.spatial.distance import jensenshannon

from recsys_cli.config import DEFAULT_CONF_DIR
from recsys_cli.monitoring.drift import (
    CATEGORICAL,
    CONTINUOUS,
    FEATURE_SCHEMA,
    DriftThresholds,
    drift_json,
    feature_drift,
    psi,
)
from recsys_cli.monitoring.shares import category_mix_drift, popularity_drift
from recsys_cli.schemas import describe
from recsys_cli.schemas.monitor import Monitor

EPS = 1e-4
LOOSE = DriftThresholds(min_samples=1)  # tiny hand-written samples may be judged


def row(table: pl.DataFrame, feature: str) -> dict[str, Any]:
    return table.filter(pl.col("feature") == feature).row(0, named=True)


# ----------------------------------------------------------------------------- by hand


def test_psi_of_a_categorical_feature_is_the_hand_computed_sum() -> None:
    reference = pl.DataFrame({"colour": ["a"] * 6 + ["b"] * 4})
    current = pl.DataFrame({"colour": ["a"] * 3 + ["b"] * 7})
    got = row(feature_drift(reference, current, LOOSE), "colour")
    # shares 0.6, 0.4 -> 0.3, 0.7 (the missing bin is empty on both sides and adds 0)
    by_hand = (0.3 - 0.6) * math.log(0.3 / 0.6) + (0.7 - 0.4) * math.log(0.7 / 0.4)
    assert by_hand == pytest.approx(0.3758, abs=1e-4)
    assert got["kind"] == CATEGORICAL and got["psi"] == pytest.approx(by_hand)


def test_psi_of_a_continuous_feature_uses_the_reference_quantile_bins() -> None:
    # bins=2: one edge at the reference median 5.5; bins (-inf, 5.5], (5.5, inf).
    reference = pl.DataFrame({"x": [float(v) for v in range(1, 11)]})
    current = pl.DataFrame({"x": [1.0, 2.0, 3.0, 6.0, 7.0, 8.0, 9.0, 10.0, 11.0, 12.0]})
    got = row(feature_drift(reference, current, DriftThresholds(min_samples=1, bins=2)), "x")
    by_hand = (0.3 - 0.5) * math.log(0.3 / 0.5) + (0.7 - 0.5) * math.log(0.7 / 0.5)
    assert got["kind"] == CONTINUOUS and got["psi"] == pytest.approx(by_hand)
    assert got["statistic"] == pytest.approx(stats.ks_2samp(reference["x"], current["x"]).statistic)


def test_an_empty_bin_is_raised_to_epsilon() -> None:
    assert psi([1.0, 0.0], [0.9, 0.1]) == pytest.approx((0.9 - 1) * math.log(0.9) + (0.1 - EPS) * math.log(0.1 / EPS))
    assert psi([0.2, 0.3, 0.5], [0.2, 0.3, 0.5]) == 0.0


def test_js_is_scipys_jensen_shannon_distance_in_base_2_of_the_binned_shares() -> None:
    reference = pl.DataFrame({"colour": ["a"] * 6 + ["b"] * 4, "x": [float(v) for v in range(10)]})
    current = pl.DataFrame({"colour": ["a"] * 3 + ["b"] * 7, "x": [float(v) for v in range(4, 14)]})
    table = feature_drift(reference, current, DriftThresholds(min_samples=1, bins=2))
    # bins: a, b, missing / (-inf, 4.5], (4.5, inf), missing
    assert row(table, "colour")["js"] == pytest.approx(jensenshannon([0.6, 0.4, 0], [0.3, 0.7, 0], base=2))
    assert row(table, "x")["js"] == pytest.approx(jensenshannon([0.5, 0.5, 0], [0.1, 0.9, 0], base=2))


def test_an_unseen_category_is_a_bin_of_its_own() -> None:
    reference = pl.DataFrame({"colour": ["a"] * 500 + ["b"] * 500})
    current = pl.DataFrame({"colour": ["a"] * 350 + ["b"] * 350 + ["new"] * 300})
    got = row(feature_drift(reference, current), "colour")
    by_hand = 2 * (0.35 - 0.5) * math.log(0.35 / 0.5) + (0.3 - EPS) * math.log(0.3 / EPS)
    assert got["psi"] == pytest.approx(by_hand)
    assert got["js"] == pytest.approx(jensenshannon([0.5, 0.5, 0], [0.35, 0.35, 0.3], base=2))
    assert got["flagged"] and got["reason"].startswith("shifted: ")


def test_rare_categories_are_pooled_until_every_expected_count_is_at_least_5() -> None:
    reference = pl.DataFrame({"colour": ["a"] * 500 + ["b"] * 480 + ["c"] * 3 + ["d"] * 2})
    current = pl.DataFrame({"colour": ["a"] * 450 + ["b"] * 530 + ["c"] * 1 + ["d"] * 4})
    got = row(feature_drift(reference, current), "colour")
    # Expected count of a column = row total x column total / n: 985 x total / 1970 >= 5
    # needs a column total of 10. c (4), d (6) and the empty missing bin are pooled: 5 + 5.
    pooled = stats.chi2_contingency([[500, 480, 5], [450, 530, 5]])
    assert got["statistic"] == pytest.approx(pooled.statistic) and got["p_value"] == pytest.approx(pooled.pvalue)


# ----------------------------------------------------------------------------- the decision


def test_p_holm_is_holms_correction_over_the_runs_features() -> None:
    rng = np.random.default_rng(7)
    reference = pl.DataFrame({f"x{i}": rng.normal(0, 1, 400) for i in range(4)})
    current = pl.DataFrame({f"x{i}": rng.normal(0.05 * i, 1, 400) for i in range(4)})
    table = feature_drift(reference, current)
    p = table.get_column("p_value").to_list()
    # By hand: the i-th smallest of m p-values (from 0) times m - i, a running maximum, capped at 1.
    running, expected = 0.0, [0.0] * 4
    for rank, i in enumerate(sorted(range(4), key=lambda i: p[i])):
        running = max(running, (4 - rank) * p[i])
        expected[i] = min(running, 1.0)
    assert table.get_column("p_holm").to_list() == pytest.approx(expected)
    assert min(p) <= 0.05 < min(expected)  # one feature passes 5% alone (0.016), not once four are tested (0.063)


def test_a_feature_below_the_minimum_sample_size_is_reported_but_never_flagged() -> None:
    reference = pl.DataFrame({"x": np.linspace(0, 1, 150), "colour": ["a"] * 150})
    current = pl.DataFrame({"x": np.linspace(5, 6, 150), "colour": ["b"] * 150})
    table = feature_drift(reference, current, DriftThresholds(min_samples=200))
    assert (table["psi"] > 5).all()  # an enormous shift ...
    assert not table.get_column("flagged").any()  # ... yet 150 rows are too few to judge
    assert table.get_column("p_holm").is_null().all() and table.get_column("p_value").is_not_null().all()
    assert set(table.get_column("reason")) == {"too few rows to judge (fewer than 200 on a side)"}


def test_a_significant_but_trivial_shift_of_a_huge_sample_is_not_flagged() -> None:
    rng = np.random.default_rng(0)
    n = 200_000
    got = row(feature_drift(pl.DataFrame({"x": rng.normal(0, 1, n)}), pl.DataFrame({"x": rng.normal(0.05, 1, n)})), "x")
    assert got["p_holm"] < 1e-10 and got["psi"] < 0.01
    assert not got["flagged"] and got["reason"].startswith("significant but small: ")


def test_a_large_psi_in_a_small_sample_is_noise_that_the_test_keeps_quiet() -> None:
    rng = np.random.default_rng(1)
    t = DriftThresholds(min_samples=50)
    draws = [(pl.DataFrame({"x": rng.normal(size=60)}), pl.DataFrame({"x": rng.normal(size=60)})) for _ in range(200)]
    runs = pl.concat([feature_drift(reference, current, t) for reference, current in draws])
    # Two samples of 60 rows from one distribution: PSI alone would cry wolf most of the time ...
    assert (runs["psi"] >= t.psi_threshold).mean() > 0.5  # type: ignore[operator]
    # ... the test keeps false alarms at alpha.
    assert runs["flagged"].mean() <= t.alpha  # type: ignore[operator]


@pytest.mark.parametrize(
    ("reference", "current"),
    [
        (np.r_[np.arange(1000.0), np.full(10, np.nan)], np.r_[np.linspace(0.0, 999.0, 400), np.full(600, np.nan)]),
        (["a", "b"] * 500, ["a", "b"] * 200 + [None] * 600),
    ],
    ids=["continuous", "categorical"],
)
def test_a_column_that_becomes_mostly_missing_is_drift(reference: Any, current: Any) -> None:
    # The values present keep their distribution; only the missing share moves, 1% (or 0%) -> 60%.
    got = row(feature_drift(pl.DataFrame({"f": reference}), pl.DataFrame({"f": current})), "f")
    assert got["missing_reference"] <= 0.01 and got["missing_current"] == pytest.approx(0.6)
    assert got["flagged"] and got["psi"] > 1
    if got["kind"] == CONTINUOUS:  # KS sees no change in the values: the missing-share test flags it
        assert got["statistic"] < 0.01


def test_a_column_absent_from_the_current_sample_is_all_missing() -> None:
    got = row(feature_drift(pl.DataFrame({"f": np.arange(500.0)}), pl.DataFrame({"g": np.arange(500.0)})), "f")
    assert got["missing_current"] == 1.0 and got["flagged"]


def test_the_current_sample_takes_the_references_types_and_keeps_new_categories() -> None:
    colours = pl.Enum(["red", "blue"])
    reference = pl.DataFrame({"colour": pl.Series(["red", "blue"] * 300, dtype=colours), "n": [1, 2, 3] * 200})
    current = pl.DataFrame({"colour": ["red", "blue", "green"] * 200, "n": [1.0, 2.0, 3.0] * 200})
    table = feature_drift(reference, current)
    assert row(table, "colour")["missing_current"] == 0.0 and row(table, "colour")["flagged"]  # green: a new bin
    assert row(table, "n")["psi"] == 0.0  # 1.0 in the current sample is the reference's 1


def test_kinds_follow_the_documented_rule() -> None:
    n = 300
    frame = pl.DataFrame(
        {
            "user_id": [f"u{i}" for i in range(n)],  # an identifier: not a feature
            "price": np.linspace(1, 9, n),
            "days": np.arange(n),  # 300 distinct integers: continuous
            "hour": np.arange(n) % 24,  # 24 distinct integers: categorical
            "member": np.arange(n) % 2 == 0,
            "region": ["north", "south", "east"] * (n // 3),
            "seen_at": pl.datetime_range(pl.datetime(2026, 1, 1), pl.datetime(2026, 1, 1, 4, 59), "1m", eager=True),
        }
    )
    table = feature_drift(frame, frame)
    assert dict(zip(table["feature"], table["kind"], strict=True)) == {
        "price": CONTINUOUS,
        "days": CONTINUOUS,
        "hour": CATEGORICAL,
        "member": CATEGORICAL,
        "region": CATEGORICAL,
        "seen_at": CONTINUOUS,
    }
    assert table.schema == FEATURE_SCHEMA and table["psi"].max() == 0.0 and not table["flagged"].any()


def test_the_json_is_plain_values_with_what_is_flagged_first() -> None:
    reference = pl.DataFrame({"colour": ["a"] * 500 + ["b"] * 500, "x": np.arange(1000.0)})
    current = pl.DataFrame({"colour": ["a"] * 900 + ["b"] * 100, "x": np.arange(1000.0)})
    events = pl.DataFrame({"item_id": ["i1", "i2"] * 200})
    out = drift_json(feature_drift(reference, current), [popularity_drift(events, events)], DriftThresholds())
    assert out["flagged"] == ["colour"] and out["thresholds"]["psi_threshold"] == 0.2
    assert [f["feature"] for f in out["features"]] == ["colour", "x"]
    assert out["distributions"][0]["name"] == "item popularity"
    json.dumps(out, allow_nan=False)


# ----------------------------------------------------------------------------- event shares


def test_item_popularity_psi_js_and_top_movers_by_hand() -> None:
    reference = pl.DataFrame({"item_id": ["i1"] * 6 + ["i2"] * 4})
    current = pl.DataFrame({"item_id": ["i1"] * 3 + ["i2"] * 3 + ["i3"] * 4})
    got = popularity_drift(reference, current, DriftThresholds(min_samples=1, top_movers=2))
    r, c = [0.6, 0.4, 0.0], [0.3, 0.3, 0.4]
    by_hand = (0.3 - 0.6) * math.log(0.3 / 0.6) + (0.3 - 0.4) * math.log(0.3 / 0.4) + (0.4 - EPS) * math.log(0.4 / EPS)
    assert got.psi == pytest.approx(by_hand) and got.js == pytest.approx(jensenshannon(r, c, base=2))
    assert (got.n_reference, got.n_current, got.flagged) == (10, 10, True)
    movers = got.movers  # the two largest changes of share: i3 +0.4, i1 -0.3
    assert movers["item_id"].to_list() == ["i3", "i1"]
    assert movers["events_reference"].to_list() == [0, 6] and movers["events_current"].to_list() == [4, 3]
    assert movers["share_reference"].to_list() == pytest.approx([0.0, 0.6])
    assert movers["share_current"].to_list() == pytest.approx([0.4, 0.3])
    assert movers["change"].to_list() == pytest.approx([0.4, -0.3])


def test_category_mix_takes_each_items_category_and_pools_past_the_bin_cap() -> None:
    items = pl.DataFrame({"item_id": ["i1", "i2", "i3"], "category": ["shoes", "shoes", "hats"]})
    reference = pl.DataFrame({"item_id": ["i1"] * 5 + ["i2"] * 5 + ["i9"] * 10})  # i9: not in the catalogue
    current = pl.DataFrame({"item_id": ["i1"] * 4 + ["i3"] * 6 + ["i9"] * 10})
    got = category_mix_drift(reference, current, items, DriftThresholds(min_samples=1))
    # shoes 0.5 -> 0.2, hats 0 -> 0.3, unknown (null) 0.5 -> 0.5
    assert got.js == pytest.approx(jensenshannon([0.5, 0.0, 0.5], [0.2, 0.3, 0.5], base=2))
    assert got.movers["category"].to_list() == ["hats", "shoes", None]
    capped = category_mix_drift(reference, current, items, DriftThresholds(min_samples=1, distribution_bins=2))
    # the busiest key (null: 20 events) then the rest pooled: 0.5, 0.5 on both sides
    assert capped.psi == 0.0 and capped.js == 0.0 and not capped.flagged


def test_windows_with_too_few_events_are_never_flagged() -> None:
    got = popularity_drift(pl.DataFrame({"item_id": ["i1"] * 50}), pl.DataFrame({"item_id": ["i2"] * 50}))
    assert got.js == 1.0 and not got.flagged and got.reason.startswith("too few events")


# ----------------------------------------------------------------------------- over many seeds

SEEDS = 200
ROWS = 5_000
SEGMENTS = np.array(["a", "b", "c", "d", "e"])
SHARES = np.array([0.40, 0.25, 0.20, 0.10, 0.05])
# Segment b doubles from 25% to 50% of rows, the others shrink in proportion.
# PSI = (0.5 - 0.25) ln 2 + (0.5 - 0.75) ln(2/3) = 0.275 by hand (the others shrink together); JS = 0.22.
DOUBLED = np.r_[SHARES[0] * 2 / 3, 0.5, SHARES[2:] * 2 / 3]
REGIONS = np.array([f"r{i:02d}" for i in range(40)])


def users(rng: np.random.Generator, shift: float = 0.0, segments: np.ndarray = SHARES) -> pl.DataFrame:
    """A user feature table: continuous, skewed with 5% missing, small and wide integer
    counts, a categorical, a boolean and a long-tailed categorical past the cardinality limit."""
    spend = rng.lognormal(3.0, 1.0, ROWS)
    spend[rng.random(ROWS) < 0.05] = np.nan
    return pl.DataFrame(
        {
            "score": rng.normal(shift, 1.0, ROWS),  # +0.5 sd: PSI about 0.24 on deciles
            "spend": spend,
            "visits": rng.poisson(3.0, ROWS),
            "tenure_days": rng.integers(0, 1_000, ROWS),
            "segment": SEGMENTS[rng.choice(5, ROWS, p=segments)],
            "subscribed": rng.random(ROWS) < 0.3,
            "region": REGIONS[np.minimum(rng.zipf(1.6, ROWS), 40) - 1],
        }
    )


@pytest.fixture(scope="module")
def seeds() -> dict[str, pl.DataFrame]:
    """Per seed: one reference, and the flags of an unshifted and of a shifted current window."""
    same, shifted = [], []
    for seed in range(SEEDS):
        rng = np.random.default_rng(seed)
        reference = users(rng)
        same.append(feature_drift(reference, users(rng)).with_columns(seed=pl.lit(seed)))
        shifted.append(feature_drift(reference, users(rng, 0.5, DOUBLED)).with_columns(seed=pl.lit(seed)))
    return {"same": pl.concat(same), "shifted": pl.concat(shifted)}


def test_an_unshifted_window_raises_no_alarm_in_at_least_95_percent_of_seeds(seeds: dict[str, pl.DataFrame]) -> None:
    per_seed = seeds["same"].group_by("seed").agg(pl.col("flagged").any(), (pl.col("p_holm") <= 0.05).any())
    assert per_seed.height == SEEDS
    assert per_seed["flagged"].mean() <= 0.05  # type: ignore[operator]
    # Holm alone keeps the family-wise error near alpha (0.05 plus two binomial sd of 200 seeds).
    assert per_seed["p_holm"].mean() <= 0.05 + 2 * math.sqrt(0.05 * 0.95 / SEEDS)  # type: ignore[operator]


def test_a_planted_shift_is_flagged_in_at_least_95_percent_of_seeds(seeds: dict[str, pl.DataFrame]) -> None:
    rates = seeds["shifted"].group_by("feature").agg(pl.col("flagged").mean())
    rate = dict(zip(rates["feature"], rates["flagged"], strict=True))
    assert rate["score"] >= 0.95 and rate["segment"] >= 0.95
    unshifted = seeds["shifted"].filter(~pl.col("feature").is_in(["score", "segment"]))
    assert unshifted.group_by("seed").agg(pl.col("flagged").any())["flagged"].mean() <= 0.05  # type: ignore[operator]


# ----------------------------------------------------------------------------- config


def shipped() -> dict[str, Any]:
    return OmegaConf.to_container(OmegaConf.load(Path(DEFAULT_CONF_DIR) / "monitor" / "default.yaml"))  # type: ignore[return-value]


def test_the_shipped_config_validates_and_matches_the_code_defaults() -> None:
    config = Monitor.model_validate(shipped())
    thresholds = config.drift.model_dump(exclude={"report_only"})
    assert thresholds == {f.name: getattr(DriftThresholds(), f.name) for f in fields(DriftThresholds)}
    assert DriftThresholds(**thresholds) == DriftThresholds()
    # Calendar-bound features are reported, never flagged (tasks/monitor.py `_report_only`).
    assert config.drift.report_only == ["item.first_seen_days"]


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("alpha", 1.5, "drift.alpha = 1.5: must be < 1"),
        ("bins", 1, "drift.bins = 1: must be >= 2"),
        ("js_threshold", 2.0, "drift.js_threshold = 2.0: must be <= 1"),
        ("colour", "red", "drift.colour = 'red': unknown key"),
    ],
)
def test_a_bad_threshold_is_one_line_naming_key_value_and_rule(key: str, value: Any, message: str) -> None:
    config = shipped()
    config["drift"][key] = value
    with pytest.raises(ValidationError) as caught:
        Monitor.model_validate(config)
    assert describe(caught.value).startswith(message)


def test_psi_and_js_thresholds_cannot_both_be_off() -> None:
    config = shipped()
    config["drift"].update(psi_threshold=None, js_threshold=None)
    with pytest.raises(ValidationError) as caught:
        Monitor.model_validate(config)
    assert describe(caught.value).startswith("drift.js_threshold = null: psi_threshold and js_threshold cannot both")
