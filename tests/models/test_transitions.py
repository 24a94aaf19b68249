"""ItemTransitions: after an item, what visitors met next (and what goes with it)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl

from recsys_cli.models.base import Recommender
from recsys_cli.models.transitions import ItemTransitions
from tests.models.clickstream_shop import minutes, ranked, shop

DAY = minutes(1)


def visit(user: str, items: list[str], start: float, step: float = 2.0, event: str = "view") -> list:
    return [(user, item, event, start + n * step) for n, item in enumerate(items)]


def test_after_an_item_its_frequent_successor_ranks_first() -> None:
    log = [e for n in range(3) for e in visit(f"u{n}", ["x", "y"], n * DAY)]
    log += visit("u9", ["x", "z"], 0.0) + visit("ann", ["x"], 5 * DAY)
    data = shop(log)
    assert ranked(ItemTransitions().fit(data), data, "ann", k=2) == ["y", "z"]


def test_what_came_next_another_day_is_no_transition() -> None:
    """w followed x five times but two days later; y followed x three times within minutes."""
    log = [e for n in range(3) for e in visit(f"u{n}", ["x", "y"], n * DAY)]
    log += [e for n in range(5) for e in visit(f"v{n}", ["x", "w"], n * DAY, step=2 * DAY)]
    log += visit("ann", ["x"], 20 * DAY)
    data = shop(log)
    assert ranked(ItemTransitions(max_gap_minutes=60).fit(data), data, "ann", k=1) == ["y"]
    assert ranked(ItemTransitions(max_gap_minutes=3 * DAY).fit(data), data, "ann", k=1) == ["w"]


def test_a_cart_after_an_item_counts_more_than_a_view() -> None:
    log = [e for n in range(3) for e in visit(f"u{n}", ["x", "y"], n * DAY)]
    log += [e for n in range(2) for e in visit(f"c{n}", ["x"], n * DAY) + [(f"c{n}", "v", "add_to_cart", n * DAY + 1)]]
    log += visit("ann", ["x"], 5 * DAY)
    data = shop(log)
    assert ranked(ItemTransitions().fit(data), data, "ann", k=1) == ["v"]
    assert ranked(ItemTransitions(event_weights={"view": 1, "add_to_cart": 1}).fit(data), data, "ann", k=1) == ["y"]


def test_items_met_together_go_with_each_other_both_ways() -> None:
    log = [e for n in range(3) for e in visit(f"u{n}", ["x", "y"], n * DAY)] + visit("ann", ["y"], 5 * DAY)
    data = shop(log + visit("u9", ["z", "q"], 0.0))
    assert ranked(ItemTransitions(backward=0.5).fit(data), data, "ann", k=1) == ["x"]
    x, y = data.item_index(pl.Series(["x", "y"]))
    assert ItemTransitions(backward=0.0).fit(data).sim[y, x] == 0  # only what came next


def test_the_latest_item_weighs_most() -> None:
    """ann met x, then q: q's successor r comes before x's successor y."""
    log = [e for n in range(2) for e in visit(f"u{n}", ["x", "y"], n * DAY)]
    log += [e for n in range(2) for e in visit(f"v{n}", ["q", "r"], n * DAY)]
    log += visit("ann", ["x", "q"], 5 * DAY)
    data = shop(log)
    assert ranked(ItemTransitions().fit(data), data, "ann", k=2) == ["r", "y"]
    assert ranked(ItemTransitions(last_n=1).fit(data), data, "ann", k=1) == ["r"]


def test_repeats_of_one_item_neither_count_nor_use_up_the_window() -> None:
    """view, click, view of x, then y: still x -> y at distance 1 with window=1."""
    log = [e for n in range(2) for e in visit(f"u{n}", ["x", "x", "x", "y"], n * DAY)]
    log += visit("u9", ["x", "z"], 0.0) + visit("ann", ["x"], 5 * DAY)
    data = shop(log)
    model = ItemTransitions(window=1).fit(data)
    assert ranked(model, data, "ann", k=1) == ["y"]
    assert model.sim.diagonal().sum() == 0


def test_only_the_strongest_neighbours_are_kept() -> None:
    log = [e for n in range(4) for e in visit(f"u{n}", ["x", "y", "z", "w", "q"], n * DAY)]
    data = shop(log + visit("ann", ["x"], 5 * DAY))
    model = ItemTransitions(neighbours=2).fit(data)
    assert np.diff(model.sim.indptr).max() <= 2
    ranking = ranked(model, data, "ann", k=4)
    assert ranking[:2] == ["y", "z"]  # the two kept; the rest follow by popularity only


def test_save_and_load_round_trip(tmp_path: Path) -> None:
    log = [e for n in range(3) for e in visit(f"u{n}", ["x", "y", "z"], n * DAY)] + visit("ann", ["x"], 5 * DAY)
    data = shop(log)
    model = ItemTransitions().fit(data)
    model.save(tmp_path / "m")
    loaded = Recommender.load(tmp_path / "m")
    users = np.arange(data.n_users)
    np.testing.assert_array_equal(loaded.score(users), model.score(users))
