from __future__ import annotations

import polars as pl
import pytest
import scipy.sparse as sp

from recsys_cli.data.schema import Col
from recsys_cli.errors import ConfigError
from recsys_cli.features.vocab import Vocabulary
from recsys_cli.models.data import TrainData
from recsys_cli.models.validation import Targets
from recsys_cli.splits.global_temporal import GlobalTemporalSplitter
from recsys_cli.splits.targets import COLD, TargetSpec, ground_truth


@pytest.fixture
def assigned(events: pl.LazyFrame) -> pl.LazyFrame:
    splitter = GlobalTemporalSplitter(val_fraction=0.2, test_fraction=0.2)
    return splitter.assign(events, splitter.folds(events)[0])


def rows(df: pl.LazyFrame) -> list[tuple[str, str, bool]]:
    return df.collect().select(Col.USER, Col.ITEM, COLD).rows()


def test_engagement_targets_exclude_seen_and_flag_cold_users(assigned: pl.LazyFrame) -> None:
    spec = TargetSpec(name="engagement", positive_events=["add_to_cart", "purchase"])
    # c re-buys i3, seen before the test window: not a target; d has no history: cold.
    assert rows(ground_truth(assigned, spec, "test")) == [("a", "i4", False), ("d", "i1", True)]
    # a bought i2 in validation after viewing it in training: a view is not a positive.
    assert rows(ground_truth(assigned, spec, "val")) == [("a", "i2", False), ("b", "i3", False)]


def test_seen_events_widen_what_counts_as_seen(assigned: pl.LazyFrame) -> None:
    spec = TargetSpec(positive_events=["add_to_cart", "purchase"], seen_events=["view", "add_to_cart", "purchase"])
    assert rows(ground_truth(assigned, spec, "val")) == [("b", "i3", False)]


def test_keeping_seen_items(assigned: pl.LazyFrame) -> None:
    spec = TargetSpec(positive_events=["purchase"], exclude_seen=False)
    assert rows(ground_truth(assigned, spec, "test")) == [("c", "i3", False), ("d", "i1", True)]


def test_min_value_filters_ratings() -> None:
    from datetime import UTC, datetime

    from recsys_cli.splits.base import PART

    df = pl.LazyFrame(
        {
            Col.USER: ["u", "u", "u"],
            Col.ITEM: ["a", "b", "c"],
            Col.EVENT: pl.Series(["rating"] * 3).cast(pl.Enum(["rating"])),
            Col.VALUE: [5.0, 3.0, 4.0],
            Col.TS: [datetime(2026, 1, d, tzinfo=UTC) for d in (1, 2, 3)],
            PART: ["train", "test", "test"],
        }
    )
    spec = TargetSpec(positive_events=["rating"], min_value=4.0)
    assert rows(ground_truth(df, spec, "test")) == [("u", "c", False)]


def test_unknown_positive_event_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="wishlist"):
        TargetSpec(positive_events=["wishlist"])


def test_targets_carry_the_time_and_context_of_the_first_positive(assigned: pl.LazyFrame) -> None:
    from tests.splits.conftest import day

    spec = TargetSpec(positive_events=["add_to_cart", "purchase"])
    row = ground_truth(assigned, spec, "test").collect().row(0, named=True)
    assert (row[Col.USER], row[Col.TS], row["hour_of_day"], row["day_of_week"]) == ("a", day(9), 12, 5)


def test_the_target_group_becomes_a_spec_and_an_unknown_key_is_named() -> None:
    from omegaconf import OmegaConf

    spec = TargetSpec.from_config(OmegaConf.create({"name": "ratings", "positive_events": ["rating"], "min_value": 4}))
    assert (spec.name, list(spec.positive_events), spec.min_value) == ("ratings", ["rating"], 4)
    with pytest.raises(ConfigError, match=r"target: unknown key\(s\) \['positives'\]"):
        TargetSpec.from_config({"name": "x", "positives": ["rating"]})


# ---- ground truth in index space (models.validation.Targets) -------------------------


def _vocab_data(items: tuple[str, ...]) -> TrainData:
    users = Vocabulary(("<oov>", "u1", "u2", "u3"))
    vocab = Vocabulary(("<oov>", *items))
    return TrainData(users, vocab, sp.csr_matrix((len(users), len(vocab))))


def test_items_outside_the_vocabulary_keep_a_column_each() -> None:
    """u1 engaged with one known item and three new products: four relevant items,
    not two (the three new ones once shared column 0 and were merged into one)."""
    data = _vocab_data(("a", "b"))
    frame = pl.DataFrame({Col.USER: ["u1"] * 4, Col.ITEM: ["a", "new1", "new2", "new3"]})
    targets = Targets.from_frame(frame, data)
    assert targets.truth.getnnz(axis=1).tolist() == [4]
    assert targets.truth.shape == (1, data.n_items + 3)
    assert targets.truth[0, 0] == 0  # the unknown item is never relevant itself
    assert targets.truth[0, 1] == 1  # "a"
    assert sorted(targets.truth.indices[targets.truth.indices >= data.n_items].tolist()) == [3, 4, 5]


def test_rows_follow_sorted_users_and_hold_their_own_items() -> None:
    """Users in any input order: rows are the sorted users, each with their items;
    one new product engaged by two users is one column; a repeated pair counts once."""
    data = _vocab_data(("a", "b", "c"))
    frame = pl.DataFrame(
        {Col.USER: ["u3", "u1", "u2", "u3", "u1", "u2", "u2"], Col.ITEM: ["c", "b", "a", "new", "new", "a", "b"]}
    )
    targets = Targets.from_frame(frame, data)
    assert targets.users.tolist() == [1, 2, 3]
    new = data.n_items  # the only unknown id: the first column past the vocabulary
    rows = [sorted(targets.truth[r].indices.tolist()) for r in range(3)]
    assert rows == [[2, new], [1, 2], [3, new]]  # u1: b + new; u2: a, b; u3: c + new


def test_users_unknown_to_the_vocabulary_are_evaluated_as_index_0() -> None:
    data = _vocab_data(("a",))
    targets = Targets.from_frame(pl.DataFrame({Col.USER: ["stranger"], Col.ITEM: ["a"]}), data)
    assert targets.users.tolist() == [0] and targets.truth.getnnz() == 1
