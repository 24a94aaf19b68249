"""A checkerboard shop whose right answers are known.

Users u0..u39 in two taste groups of twenty: group A buys items a0..a4, group B
items b0..b4, each user all but one item of their group. The held-out item of a
user is the one a personalised model must put first; popularity cannot tell
the groups apart. Group B has one more interaction per item, so popularity
prefers B items for everybody.
"""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from recsys_cli.data.schema import Col
from recsys_cli.features.vocab import Vocabulary
from recsys_cli.models.data import LabelledWindow, TrainData, interaction_matrix

PER_GROUP = 20
GROUPS = {"A": [f"a{i}" for i in range(5)], "B": [f"b{i}" for i in range(5)]}


def checkerboard() -> tuple[TrainData, dict[str, str]]:
    rows, held_out, regions = [], {}, {}
    for g, (group, items) in enumerate(GROUPS.items()):
        for j in range(PER_GROUP):
            user = f"u{g * PER_GROUP + j}"
            held_out[user] = items[j % 5]
            regions[user] = "north" if group == "A" else "south"
            rows += [(user, item, 1.0) for item in items if item != held_out[user]]
    rows += [("u_extra", item, 1.0) for item in GROUPS["B"]]
    regions["u_extra"] = "south"
    inter = pl.DataFrame(rows, schema=[Col.USER, Col.ITEM, "weight"], orient="row")
    users = Vocabulary.fit(inter[Col.USER])
    items = Vocabulary.fit(pl.Series(sorted(GROUPS["A"] + GROUPS["B"])))
    item_features = pl.DataFrame({Col.ITEM: GROUPS["A"] + GROUPS["B"]}).with_columns(
        pl.lit(1, dtype=pl.UInt32).alias(f"n_{e}_{days}d")
        for e in ("view", "add_to_cart", "purchase", "rating")
        for days in (7, 30)
    )
    user_features = pl.DataFrame({Col.USER: list(regions), "region": list(regions.values())})
    # Each user met their items in a different order, so every item is sometimes next.
    order = np.random.default_rng(7).permutation(inter.height)
    sequences = inter[order].group_by(Col.USER, maintain_order=True).agg(pl.col(Col.ITEM).alias("items"))
    data = TrainData(users, items, interaction_matrix(inter, users, items), user_features, item_features, sequences)
    data.windows = [_window(data, inter, shift) for shift in (1, 2)]
    return data, held_out


def _window(data: TrainData, inter: pl.DataFrame, nth: int) -> LabelledWindow:
    """An earlier cutoff for rankers: each user had not yet met their `nth` item
    (in id order), and met it in the window that followed."""
    labels = inter.group_by(Col.USER).agg(pl.col(Col.ITEM).sort().get(nth)).sort(Col.USER)
    before = inter.join(labels, on=[Col.USER, Col.ITEM], how="anti")
    matrix = interaction_matrix(before, data.users, data.items)
    window = TrainData(data.users, data.items, matrix, data.user_features, data.item_features, data.sequences)
    return LabelledWindow(window, labels)


@pytest.fixture
def board() -> tuple[TrainData, dict[str, str]]:
    return checkerboard()


def user_rows(data: TrainData, users: list[str]) -> np.ndarray:
    return data.user_index(pl.Series(users))
