"""A blend sums its members' per-user z-scores; the weights and every member's own
choices are made on validation and pinned for the refit."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest
from hydra.utils import instantiate

from recsys_cli.config import compose
from recsys_cli.errors import ConfigError
from recsys_cli.models.base import Recommender
from recsys_cli.models.blend import Blend
from recsys_cli.models.data import TrainData
from recsys_cli.models.validation import Targets
from recsys_cli.registry import selection

POPULARITY = {"_target_": "recsys_cli.models.popularity.Popularity"}
KNN = {"_target_": "recsys_cli.models.item_knn.ItemKNN", "shrink": 0.0, "grid": None}


def targets(data: TrainData, held_out: dict[str, str]) -> Targets:
    frame = pl.DataFrame({"user_id": list(held_out), "item_id": list(held_out.values())})
    return Targets.from_frame(frame, data)


def test_zero_weight_ranks_as_the_first_member_alone(board: tuple[TrainData, dict[str, str]]) -> None:
    data, _ = board
    users = np.arange(1, data.n_users)
    alone = Blend({"knn": KNN, "pop": POPULARITY}, weights={"pop": 0.0}).fit(data)
    knn = instantiate(KNN).fit(data)
    np.testing.assert_array_equal(alone.recommend(users, 3)[0], knn.recommend(users, 3)[0])


def test_a_members_scale_and_offset_do_not_matter(board: tuple[TrainData, dict[str, str]]) -> None:
    """Z-scores: the same blend whatever units a member's scores come in."""
    data, _ = board
    users = np.arange(1, data.n_users)
    blend = Blend({"knn": KNN, "pop": POPULARITY}, weights={"pop": 0.3}).fit(data)
    before = blend.score(users)
    pop = blend.members["pop"]
    pop.popularity = pop.popularity * 1000.0 + 7.0  # Popularity scores are its counts
    np.testing.assert_allclose(blend.score(users), before, rtol=1e-5, atol=1e-5)


def test_the_grid_is_chosen_on_validation_and_pinned_for_the_refit(board: tuple[TrainData, dict[str, str]]) -> None:
    """Popularity cannot tell the board's two groups apart, so any weight on it can
    only cost the item model its held-out items: the grid keeps 0."""
    data, held_out = board
    blend = Blend({"knn": KNN, "pop": POPULARITY}, grid={"pop": [2.0, 0.0, 0.5]})
    assert blend.chooses_on_validation
    blend.fit(data, validation=targets(data, held_out))
    assert blend.selected == {"weights.pop": 0.0}
    assert blend.params["weights"] == {"pop": 0.0}
    scores = [blend.diagnostics[f"grid/pop={w:g}/val_ndcg@10"] for w in (2.0, 0.0, 0.5)]
    assert scores[1] == max(scores) > scores[0]
    assert blend.diagnostics["selected/val_ndcg@10"] == scores[1]


def test_members_choices_are_pinned_under_their_own_keys(board: tuple[TrainData, dict[str, str]]) -> None:
    """A member that searches its own grid (EASE's l2) or stops early (SASRec) reports
    the choice as a `model.members.<name>.<key>` the refit config takes."""
    data, held_out = board
    cfg = compose(
        "train",
        [
            "model=blend",
            "trainer=smoke",
            "trainer.max_epochs=4",
            "model.members.sasrec.dim=8",
            "model.members.sasrec.heads=1",
            "model.members.sasrec.layers=1",
            "model.members.sasrec.max_len=8",
            "model.members.ease.grid={l2:[1.0,50.0]}",
            "model.grid={ease:[0.0,1.0]}",
        ],
    )
    blend = instantiate(cfg.model, _convert_="all").fit(data, validation=targets(data, held_out))
    chosen = selection.chosen(blend)
    assert chosen.best_epoch is None  # the blend pins its members' epochs itself
    assert set(chosen.params) == {"members.ease.l2", "members.sasrec.trainer.max_epochs", "weights.ease"}
    assert 1 <= chosen.params["members.sasrec.trainer.max_epochs"] <= 4
    refit = selection.apply(cfg, chosen)
    assert refit.model.members.sasrec.trainer.max_epochs == chosen.params["members.sasrec.trainer.max_epochs"]
    assert refit.model.members.ease.l2 == chosen.params["members.ease.l2"]
    assert refit.model.weights.ease == chosen.params["weights.ease"]
    # time to the chosen model: each member's fit (SASRec's to its best epoch) and the grid
    assert blend.diagnostics["cpu_seconds_to_best_epoch"] > 0


def test_save_and_load_keep_members_and_weights(board: tuple[TrainData, dict[str, str]], tmp_path: Path) -> None:
    data, _ = board
    users = np.arange(data.n_users)
    blend = Blend({"knn": KNN, "pop": POPULARITY}, weights={"pop": 0.2}).fit(data)
    blend.save(tmp_path / "blend")
    loaded = Recommender.load(tmp_path / "blend")
    assert isinstance(loaded, Blend) and loaded.params["weights"] == {"pop": 0.2}
    np.testing.assert_allclose(loaded.score(users), blend.score(users), rtol=1e-6)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"members": {"knn": KNN}}, "at least two members"),
        ({"members": {"knn": KNN, "pop": POPULARITY}, "weights": {"knn": 0.5}}, "knn is not a member after the first"),
        ({"members": {"knn": KNN, "pop": POPULARITY}, "grid": {"other": [1.0]}}, "other is not a member"),
        ({"members": {"knn": KNN, "pop": POPULARITY}, "weights": {"pop": -1.0}}, "finite and >= 0"),
        ({"members": {"knn": KNN, "pop": POPULARITY}, "grid": {"pop": []}}, "non-empty"),
    ],
)
def test_bad_settings_are_named(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Blend(**kwargs)  # type: ignore[arg-type]


def test_a_member_class_outside_the_package_is_refused() -> None:
    from recsys_cli.errors import IntegrityError

    with pytest.raises(IntegrityError, match="not a recsys model class"):
        Blend({"knn": KNN, "evil": {"_target_": "os.system"}})
