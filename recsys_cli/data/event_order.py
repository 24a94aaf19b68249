"""One rule for the order of a user's events in time, shared by the splits that
hold out a user's latest events and the sequences that sequential models read.

Logs often stamp many events with the same instant: MovieLens users rate dozens
of films within one second, and shops log by the second or by the day. Ties must
be broken reproducibly, but not by item id. Ordered by id, a sequential model
learns an id order that means nothing, and leave-last-out always holds out the
largest id of a burst. On MovieLens-100K (where 415 of 943 users' latest second
holds several ratings) that made the held-out items rarer: every baseline scored
13 to 20% lower, and SASRec looked 2.0x as good as ALS instead of 1.45x
(BENCHMARKS.md, P3). Ties go to a pseudo-random key per (user, item) instead,
then to the funnel order of event types, so one item's view still comes before
its purchase, and last to the remaining contract columns: two purchases of one
item at one instant that differ only in price have an order too, or which of
them a split holds out would depend on the order the rows were read in (and
differ between engines and runs).

Polars promises its hash is stable within one Polars version; the split manifest
records the version that ordered it.
"""

from __future__ import annotations

from collections.abc import Collection

import polars as pl

from recsys_cli.data.schema import Col

# Fixed, not the run's seed: a split and its features must not change with the model's seed.
TIE_SEED = 20_261_127
RULE = "time, then a hash of (user, item), then event type, then value, quantity, price, session and source"
# The last keys: every other column of the contract, where the frame has it.
REST = (Col.VALUE, Col.QUANTITY, Col.PRICE, Col.SESSION, Col.SOURCE)


def tie_key() -> pl.Expr:
    """Pseudo-random per (user, item): no order of item ids that one user's ties
    share with another's."""
    return pl.struct(Col.USER, Col.ITEM).hash(seed=TIE_SEED)


def event_order(columns: Collection[str] = REST) -> list[pl.Expr]:
    """Sort keys, oldest first, for the events of one user (the item breaks the
    rare hash collision); of `REST`, those in `columns` (the frame's names)."""
    rest = [pl.col(c) for c in REST if c in columns]
    return [pl.col(Col.TS), tie_key(), pl.col(Col.ITEM), pl.col(Col.EVENT), *rest]


def describe() -> dict[str, str]:
    """What a manifest records so that the order can be traced and repeated."""
    return {"rule": RULE, "seed": str(TIE_SEED), "polars": pl.__version__}
