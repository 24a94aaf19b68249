"""A known user's ranker features move with the events the service received since
the cutoff: event counts and recency do, the columns that need older history don't."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl

from recsys_cli.data.schema import Col
from recsys_cli.features.vocab import Vocabulary
from recsys_cli.models.candidates import history_pairs
from recsys_cli.models.live_features import LiveUserFeatures
from recsys_cli.models.side_features import encode_side, raw_values

USERS = Vocabulary(("<oov>", "u1", "u2", "u3"))
COLUMNS = ("events_total", "n_view_7d", "n_purchase_30d", "recency_days", "conversion_7d")


def aggregates() -> pl.DataFrame:
    return pl.DataFrame(
        {
            Col.USER: ["u1", "u2", "u3"],
            "region": ["north", "south", "north"],
            "events_total": [12, 3, 40],
            "n_view_7d": [5, 0, 20],
            "n_purchase_30d": [1, 0, 4],
            "recency_days": [2.5, 20.0, 0.3],
            "conversion_7d": [0.2, None, 0.1],
        }
    )


def raw_row(side: object, z: np.ndarray) -> np.ndarray:
    return raw_values(z, side.scale)  # type: ignore[attr-defined]


def test_event_counts_and_recency_move_and_the_other_columns_stay() -> None:
    side = encode_side(aggregates(), Col.USER, USERS, {})
    assert side.numeric_names == COLUMNS
    live = LiveUserFeatures.of(side)
    before = side.numeric[1]
    after = live.updated(before, ["view", "view", "purchase", "click"], recency_days=0.25)
    np.testing.assert_allclose(raw_row(side, before)[:4], [12, 5, 1, 2.5], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(raw_row(side, after)[:4], [16, 7, 2, 0.25], rtol=1e-5, atol=1e-6)
    assert after[4] == before[4]  # conversion needs the old events too: as at the cutoff


def test_without_a_recency_only_counts_move_and_event_types_outside_the_schema_count_nowhere() -> None:
    side = encode_side(aggregates(), Col.USER, USERS, {})
    live = LiveUserFeatures.of(side)
    before = side.numeric[2]
    after = live.updated(before, ["wishlist"], recency_days=None)
    np.testing.assert_array_equal(after, before)  # not an event type of the schema: nothing moves
    after = live.updated(before, ["add_to_cart"], recency_days=None)
    np.testing.assert_allclose(raw_row(side, after)[:4], [4, 0, 0, 20.0], rtol=1e-5, atol=1e-6)


def test_the_rule_round_trips_through_one_array_and_a_table_without_such_columns_has_none() -> None:
    side = encode_side(aggregates(), Col.USER, USERS, {})
    live = LiveUserFeatures.of(side)
    again = LiveUserFeatures.from_array(live.as_array())
    row = side.numeric[3]
    np.testing.assert_array_equal(again.updated(row, ["view"], 1.0), live.updated(row, ["view"], 1.0))
    plain = encode_side(aggregates().select(Col.USER, "conversion_7d"), Col.USER, USERS, {})
    assert LiveUserFeatures.of(side).moves and not LiveUserFeatures.of(plain).moves


def test_a_rankers_user_features_move_with_live_events_and_survive_save_and_load(tmp_path: Path) -> None:
    from recsys_cli.models.base import Recommender
    from recsys_cli.models.ranker import TwoStageRanker
    from tests.models.conftest import checkerboard
    from tests.models.test_contract import SMALL, make

    data, _ = checkerboard()
    users = data.user_features
    assert users is not None
    rng = np.random.default_rng(3)
    users = users.with_columns(
        pl.Series("events_total", rng.integers(1, 50, users.height)),
        pl.Series("n_view_7d", rng.integers(0, 20, users.height)),
        pl.Series("recency_days", rng.uniform(0, 30, users.height)),
    )
    for d in (data, *(w.data for w in data.windows)):
        d.user_features = users
    model = make("ranker_lgbm", *SMALL["ranker_lgbm"]).fit(data)
    assert isinstance(model, TwoStageRanker) and model.tables is not None
    model.save(tmp_path / "model")
    loaded = Recommender.load(tmp_path / "model")
    assert isinstance(loaded, TwoStageRanker) and loaded.tables is not None
    np.testing.assert_array_equal(loaded.tables.user_live, model.tables.user_live)

    user, new = 1, np.array([data.n_items - 1], dtype=np.int64)
    n_user = loaded.tables.users.numeric.shape[1]
    pairs = history_pairs(loaded.generators, loaded.tables, user, new, ["view"], 5, recency_days=0.1)
    expected = LiveUserFeatures.from_array(loaded.tables.user_live).updated(
        loaded.tables.users.numeric[user], ["view"], 0.1
    )
    np.testing.assert_array_equal(pairs.numeric[:, -n_user:], np.tile(expected, (pairs.items.size, 1)))
    assert not np.array_equal(expected, loaded.tables.users.numeric[user])
    still = history_pairs(loaded.generators, loaded.tables, user, np.zeros(0, np.int64), [], 5)
    assert (still.numeric[:, -n_user:] == loaded.tables.users.numeric[user]).all()  # no events: the snapshot
