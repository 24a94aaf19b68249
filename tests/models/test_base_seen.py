"""What a model leaves out of a user's recommendations is what the target leaves
out of the user's ground truth: the items the target counts as already seen.

A visitor v, before the day-10 cutoff, viewed x and z, carted y and removed q from
the cart; in the validation window v carts x and q and buys y, z and w. Other
users bought or viewed the same items, so popularity ranks x > y = z > q = w.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from omegaconf import OmegaConf

from recsys_cli.config import DEFAULT_CONF_DIR
from recsys_cli.data.schema import EVENTS_SCHEMA, Col
from recsys_cli.errors import SplitError
from recsys_cli.features.build import FeatureConfig, build
from recsys_cli.features.interactions import SEEN
from recsys_cli.models.data import TrainData
from recsys_cli.models.popularity import Popularity
from recsys_cli.splits.base import VAL, Fold
from recsys_cli.splits.global_temporal import GlobalTemporalSplitter
from recsys_cli.splits.targets import TargetSpec, ground_truth


def day(d: int) -> datetime:
    return datetime(2026, 1, d, 12, tzinfo=UTC)


LOG = [
    # before the cutoff
    ("v", "x", "view", 1),
    ("v", "y", "add_to_cart", 1),
    ("v", "z", "view", 2),
    ("v", "q", "remove_from_cart", 2),  # weighs nothing by default
    *[("o1", item, "purchase", 3) for item in ("x", "y", "z", "q")],
    ("o2", "x", "purchase", 3),
    ("o2", "y", "purchase", 3),
    ("o3", "x", "view", 4),
    ("o3", "z", "view", 4),
    ("o3", "w", "purchase", 4),
    # the validation window
    ("v", "x", "add_to_cart", 11),
    ("v", "y", "purchase", 11),
    ("v", "z", "purchase", 12),
    ("v", "q", "add_to_cart", 12),
    ("v", "w", "purchase", 12),
    ("o1", "x", "purchase", 13),
]
CUTOFF = day(10)


def target(name: str) -> TargetSpec:
    """A shipped preset (conf/target/NAME.yaml), as `recsys split` and `recsys features` read it."""
    return TargetSpec.from_config(OmegaConf.load(DEFAULT_CONF_DIR / "target" / f"{name}.yaml"))


@pytest.fixture
def assigned() -> pl.LazyFrame:
    events = pl.LazyFrame(
        {
            Col.USER: [r[0] for r in LOG],
            Col.ITEM: [r[1] for r in LOG],
            Col.EVENT: pl.Series([r[2] for r in LOG]).cast(EVENTS_SCHEMA[Col.EVENT]),
            Col.TS: [day(r[3]) for r in LOG],
        }
    )
    names = events.collect_schema().names()
    events = events.with_columns(pl.lit(None, dtype=t).alias(c) for c, t in EVENTS_SCHEMA.items() if c not in names)
    return GlobalTemporalSplitter().assign(events, Fold("f", None, CUTOFF, day(20), day(30)))


def feature_set(assigned: pl.LazyFrame, spec: TargetSpec, folder: Path, **cfg: int) -> TrainData:
    """The features `recsys features` writes for this target, read back as `recsys train` does."""
    build(assigned, VAL, CUTOFF, FeatureConfig(windows_days=(1,), **cfg), target=spec).write(folder)
    return TrainData.from_features(folder)


def recommended(model: Popularity, data: TrainData, user: str, k: int = 5) -> list[str]:
    top, scores = model.recommend(data.user_index(pl.Series([user])), k)
    return [data.items.tokens[i] for i, s in zip(top[0], scores[0], strict=True) if np.isfinite(s)]


def truth(assigned: pl.LazyFrame, spec: TargetSpec, user: str) -> list[str]:
    frame = ground_truth(assigned, spec, VAL).collect()
    return sorted(frame.filter(pl.col(Col.USER) == user)[Col.ITEM].to_list())


def test_engagement_recommends_and_counts_an_item_viewed_but_not_carted(assigned: pl.LazyFrame, tmp_path: Path) -> None:
    """Re-targeting: only what v carted (y) is left out, on both sides."""
    spec = target("engagement")
    data = feature_set(assigned, spec, tmp_path)
    model = Popularity().fit(data)
    assert recommended(model, data, "v") == ["x", "z", "q", "w"]
    assert truth(assigned, spec, "v") == ["q", "w", "x", "z"]


def test_engagement_new_excludes_every_item_the_user_interacted_with(assigned: pl.LazyFrame, tmp_path: Path) -> None:
    """Discovery only: the views and even the weightless removal from the cart make
    x, z and q seen; only w is left to recommend, and only w counts when v buys it."""
    spec = target("engagement_new")
    data = feature_set(assigned, spec, tmp_path)
    model = Popularity().fit(data)
    assert recommended(model, data, "v") == ["w"]
    assert truth(assigned, spec, "v") == ["w"]


@pytest.mark.parametrize("name", ["engagement", "engagement_new", "purchases"])
def test_ground_truth_and_recommendations_leave_out_the_same_items(
    assigned: pl.LazyFrame, tmp_path: Path, name: str
) -> None:
    """Of the window's positives, those the ground truth drops are exactly those the
    model will not recommend; none it keeps is one the model cannot recommend."""
    spec = target(name)
    data = feature_set(assigned, spec, tmp_path)
    model = Popularity().fit(data)
    kept = set(ground_truth(assigned, spec, VAL).collect().select(Col.USER, Col.ITEM).rows())
    every = set(
        ground_truth(assigned, replace(spec, exclude_seen=False), VAL).collect().select(Col.USER, Col.ITEM).rows()
    )
    assert model.seen is not None
    rows, cols = model.seen.nonzero()
    masked = {(data.users.tokens[u], data.items.tokens[i]) for u, i in zip(rows, cols, strict=True)}
    assert every - kept == every & masked
    assert every - kept, "the log must give the target something to leave out"


def test_popularity_counts_every_interacting_user_whatever_the_target(assigned: pl.LazyFrame, tmp_path: Path) -> None:
    """The cold-start fallback does not depend on what counts as seen: x has four
    users, y and z three, q and w one (v's removal from the cart weighs nothing)."""
    for name in ("engagement", "engagement_new"):
        data = feature_set(assigned, target(name), tmp_path / name)
        model = Popularity().fit(data)
        assert model.popularity is not None
        counts = dict(zip(data.items.tokens[1:], model.popularity[1:].tolist(), strict=True))
        assert counts == {"q": 1, "w": 1, "x": 4, "y": 3, "z": 3}, name


def test_a_seen_item_without_weight_is_excluded_but_is_no_interaction(assigned: pl.LazyFrame, tmp_path: Path) -> None:
    data = feature_set(assigned, target("engagement_new"), tmp_path)
    v, q = data.user_index(pl.Series(["v"]))[0], data.item_index(pl.Series(["q"]))[0]
    assert data.matrix[v, q] == 0 and data.matrix.nnz == data.interacted().nnz  # no stored zero weights
    assert data.seen_matrix()[v, q] == 1


def test_ranker_windows_carry_their_own_seen_items(assigned: pl.LazyFrame, tmp_path: Path) -> None:
    """A window's generators are fitted on the window's data, so their candidates
    leave out what that window's labels leave out."""
    data = feature_set(assigned, target("engagement"), tmp_path, ranker_windows=1, ranker_label_days=7)
    (window,) = data.windows
    generator = Popularity().fit(window.data)
    assert generator.seen is not None and window.data.seen is not None
    assert (generator.seen != window.data.seen).nnz == 0
    assert window.data.seen.nnz < window.data.interacted().nnz  # views are interactions, not seen


def test_a_feature_set_from_before_seen_items_were_recorded_is_refused(assigned: pl.LazyFrame, tmp_path: Path) -> None:
    """Reading it as every interaction would silently score a different target
    than the one its split holds; a rerun of `recsys features` takes seconds."""
    feature_set(assigned, target("engagement"), tmp_path)
    path = tmp_path / "interactions.parquet"
    pl.read_parquet(path).drop(SEEN).write_parquet(path)
    with pytest.raises(SplitError, match=r"interactions.parquet: written before .* rerun `recsys features`"):
        TrainData.from_features(tmp_path)


def test_data_built_in_memory_without_seen_items_excludes_every_interaction(
    assigned: pl.LazyFrame, tmp_path: Path
) -> None:
    data = feature_set(assigned, target("engagement"), tmp_path)
    data.seen = None
    model = Popularity().fit(data)
    assert recommended(model, data, "v") == ["q", "w"]  # x and z viewed, y carted


def test_labelled_windows_are_read_from_their_folders_one_at_a_time(assigned: pl.LazyFrame, tmp_path: Path) -> None:
    """A ranker walks its windows in turn; none is held by the feature set, so a
    shop's dozen windows never sit in memory together."""
    data = feature_set(assigned, target("engagement"), tmp_path, ranker_windows=2, ranker_label_days=3)
    assert len(data.windows) == 2
    first, again = data.windows[0], data.windows[0]
    assert first is not again  # read anew, not cached
    assert (first.data.matrix != again.data.matrix).nnz == 0
    assert first.labels.equals(again.labels)
    assert [w.labels.height for w in data.windows] == [w.labels.height for w in data.windows[:]]
