"""Warm start or refit (recsys_cli/retraining/policy.py): the mode the config asks
for, or under `auto` the one the shop's shift since the production cutoff calls for,
and the figures that shift is read from."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import polars as pl
import pytest
from scipy.spatial.distance import jensenshannon

from recsys_cli.data.schema import Col
from recsys_cli.features.vocab import Vocabulary
from recsys_cli.retraining.policy import choose, shift_figures

LIMITS = {"unknown_item_event_share": 0.3, "category_js": 0.3}
CALM = {"unknown_item_event_share": 0.1, "category_js": 0.05}
PRODUCTION = datetime(2026, 3, 1, tzinfo=UTC)  # the production model's cutoff
CUTOFF = PRODUCTION + timedelta(days=4)  # the candidate's


def test_a_model_that_cannot_warm_start_is_refit_whatever_the_mode() -> None:
    for mode in ("auto", "warm", "full"):
        choice = choose(mode, False, CALM, LIMITS)
        assert choice.mode == "full" and "cannot warm start" in choice.reason


@pytest.mark.parametrize("mode", ["warm", "full"])
def test_a_forced_mode_is_honoured_even_past_the_thresholds(mode: str) -> None:
    moved = {"unknown_item_event_share": 0.9, "category_js": 0.9}
    choice = choose(mode, True, moved, LIMITS)
    assert choice.mode == mode and choice.reason == f"retrain.policy.mode is {mode}"


def test_auto_warm_starts_while_the_shop_looks_as_it_did() -> None:
    choice = choose("auto", True, CALM, LIMITS)
    assert choice.mode == "warm" and choice.figures == CALM
    assert choice.to_json() == {"mode": "warm", "reason": choice.reason, "figures": CALM}


@pytest.mark.parametrize(
    ("figures", "named"),
    [
        ({"unknown_item_event_share": 0.3, "category_js": 0.05}, "unknown_item_event_share 0.300 >= 0.3"),
        ({"unknown_item_event_share": 0.1, "category_js": 0.45}, "category_js 0.450 >= 0.3"),
    ],
)
def test_auto_refits_when_either_figure_reaches_its_threshold(figures: dict[str, float], named: str) -> None:
    choice = choose("auto", True, figures, LIMITS)
    assert choice.mode == "full" and named in choice.reason


def test_both_figures_past_their_thresholds_are_both_named() -> None:
    choice = choose("auto", True, {"unknown_item_event_share": 0.5, "category_js": 0.5}, LIMITS)
    assert choice.mode == "full" and "unknown_item_event_share" in choice.reason and "category_js" in choice.reason


def test_a_null_threshold_switches_its_test_off() -> None:
    moved = {"unknown_item_event_share": 0.9, "category_js": 0.9}
    assert choose("auto", True, moved, {"unknown_item_event_share": None, "category_js": None}).mode == "warm"
    only_js = choose("auto", True, moved, {"unknown_item_event_share": None, "category_js": 0.3})
    assert only_js.mode == "full" and "unknown_item_event_share" not in only_js.reason


def test_a_figure_that_could_not_be_measured_passes_no_threshold() -> None:
    unmeasured = {"unknown_item_event_share": None, "category_js": None}
    assert choose("auto", True, unmeasured, LIMITS).mode == "warm"


def events(rows: list[tuple[str, float]]) -> pl.LazyFrame:
    """(item, days after the production cutoff) per event."""
    return pl.LazyFrame(
        {
            Col.USER: ["u"] * len(rows),
            Col.ITEM: [item for item, _ in rows],
            Col.TS: [PRODUCTION + timedelta(days=d) for _, d in rows],
        }
    )


KNOWN = Vocabulary(("<oov>", "a", "b"))  # the production model's items
ITEMS = pl.LazyFrame({Col.ITEM: ["a", "b", "n"], Col.CATEGORY: ["x", "x", "y"]})


def test_the_share_of_new_events_on_items_production_never_met() -> None:
    # Before the production cutoff 4 days of a and b; since: a, b, a and one new item n;
    # on and after the candidate's cutoff (held out) only new items, which must not count.
    log = [("a", -3), ("b", -2), ("a", -1), ("b", -0.5), ("a", 0), ("b", 1), ("a", 2), ("n", 3.9)]
    log += [("n", 4), ("n", 5)]
    figures = shift_figures(events(log), None, KNOWN, PRODUCTION, CUTOFF)
    assert figures["new_events"] == 4 and figures["days_since_cutoff"] == 4
    assert figures["unknown_item_event_share"] == pytest.approx(1 / 4)
    assert figures["category_js"] is None  # no catalogue to read categories from


def test_the_category_mix_is_compared_with_as_many_days_before_the_cutoff() -> None:
    # Before: 4 events of category x. Since: 2 of x, 2 of y. An x event 5 days before the
    # production cutoff lies outside the 4-day reference window and must not count.
    log = [("a", -5), ("a", -5), ("a", -5), ("a", -3), ("b", -2), ("a", -1), ("b", -0.5)]
    log += [("a", 0), ("b", 1), ("n", 2), ("n", 3)]
    figures = shift_figures(events(log), ITEMS, KNOWN, PRODUCTION, CUTOFF)
    assert figures["unknown_item_event_share"] == pytest.approx(0.5)
    assert figures["category_js"] == pytest.approx(jensenshannon([1, 0], [0.5, 0.5], base=2))


def test_an_unchanged_mix_and_no_new_events() -> None:
    same = shift_figures(events([("a", -2), ("n", -1), ("a", 1), ("n", 2)]), ITEMS, KNOWN, PRODUCTION, CUTOFF)
    assert same["category_js"] == pytest.approx(0.0, abs=1e-9)
    empty = shift_figures(events([("a", -2), ("a", 5)]), None, KNOWN, PRODUCTION, CUTOFF)
    assert empty["new_events"] == 0 and empty["unknown_item_event_share"] is None
