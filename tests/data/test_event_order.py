"""Events at the same instant: ordered reproducibly, never by item id, one item's
funnel kept in order, and the same order in the splits and in the sequences."""

from __future__ import annotations

import polars as pl

from recsys_cli.data.schema import EVENTS_SCHEMA, Col
from recsys_cli.features.sequences import sequences
from recsys_cli.splits.base import PART, TEST, VAL
from recsys_cli.splits.leave_last_n import LeaveLastNSplitter
from tests.splits.conftest import day

ITEMS = [f"i{n}" for n in range(10)]


def bursts(n_users: int = 40) -> pl.LazyFrame:
    """Every user rates the same ten items within one second (day 2), after one
    earlier item (day 1): the MovieLens pattern."""
    rows = [(f"u{u}", "first", "rating", day(1)) for u in range(n_users)]
    rows += [(f"u{u}", item, "rating", day(2)) for u in range(n_users) for item in ITEMS]
    return (
        pl.DataFrame(rows, schema=[Col.USER, Col.ITEM, Col.EVENT, Col.TS], orient="row")
        .with_columns(pl.col(Col.EVENT).cast(EVENTS_SCHEMA[Col.EVENT]))
        .lazy()
    )


def held_out(events: pl.LazyFrame) -> pl.DataFrame:
    splitter = LeaveLastNSplitter(n=1, val_n=1)
    (fold,) = splitter.folds(events)
    return splitter.assign(events, fold).collect()


def test_ties_in_time_are_not_broken_by_item_id() -> None:
    test = held_out(bursts()).filter(pl.col(PART) == TEST)
    # By item id every user would hold out "i9"; a per-user key spreads the choice.
    assert test[Col.ITEM].n_unique() >= 6
    assert held_out(bursts()).equals(held_out(bursts()))  # and the same on every run


def test_the_split_holds_out_what_the_sequences_put_last() -> None:
    events = bursts()
    split = held_out(events)
    seqs = sequences(events, max_len=20).collect()
    last_two = seqs.select(Col.USER, pl.col("items").list.get(-1).alias(TEST), pl.col("items").list.get(-2).alias(VAL))
    for part in (TEST, VAL):
        chosen = split.filter(pl.col(PART) == part).select(Col.USER, pl.col(Col.ITEM).alias(part))
        assert chosen.sort(Col.USER).equals(last_two.select(Col.USER, part).sort(Col.USER))


def test_one_items_funnel_keeps_its_order_at_one_instant() -> None:
    rows = [("u", "shoe", event, day(3)) for event in ("purchase", "view", "add_to_cart")]
    rows += [("u", "hat", "view", day(3))]
    events = pl.DataFrame(rows, schema=[Col.USER, Col.ITEM, Col.EVENT, Col.TS], orient="row").with_columns(
        pl.col(Col.EVENT).cast(EVENTS_SCHEMA[Col.EVENT])
    )
    seq = sequences(events.lazy()).collect().row(0, named=True)
    shoe = [e for i, e in zip(seq["items"], seq["event_types"], strict=True) if i == "shoe"]
    assert shoe == ["view", "add_to_cart", "purchase"]
    assert seq["items"].index("hat") in (0, 3)  # the other item's event is before or after the whole funnel


def test_events_equal_but_for_price_are_held_out_the_same_whatever_the_read_order() -> None:
    """Two purchases of one item at one instant, at two prices: which one is the
    test event must not depend on the order the lake's files were read in."""
    rows = [("u", "shoe", "purchase", day(3), price) for price in (10.0, 12.0)]
    rows += [("u", "hat", "view", day(1), None), ("u", "sock", "view", day(2), None)]
    events = pl.DataFrame(rows, schema=[Col.USER, Col.ITEM, Col.EVENT, Col.TS, Col.PRICE], orient="row").with_columns(
        pl.col(Col.EVENT).cast(EVENTS_SCHEMA[Col.EVENT])
    )
    outcomes = set()
    for seed in range(8):
        shuffled = events.sample(fraction=1.0, shuffle=True, seed=seed).lazy()
        test = held_out(shuffled).filter(pl.col(PART) == TEST)
        seq = sequences(shuffled).collect().row(0, named=True)
        outcomes.add((test[Col.PRICE].item(), seq["items"][-1]))
    assert outcomes == {(12.0, "shoe")}
