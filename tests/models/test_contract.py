"""Every model in conf/model/ honours the same contract, found automatically."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest
from hydra.utils import instantiate

from recsys_cli.config import DEFAULT_CONF_DIR, compose
from recsys_cli.models.base import Recommender
from recsys_cli.models.data import TrainData
from tests.models.conftest import GROUPS, user_rows

MODELS = sorted(p.stem for p in (DEFAULT_CONF_DIR / "model").glob("*.yaml"))
PERSONAL = {
    "item_knn",
    "ease",
    "segment_popularity",
    "bpr_mf",
    "sasrec",
    "als",
    "implicit_bpr",
    "two_tower",
    "ranker",
    "ranker_lgbm",
    "ranker_lgbm_ensemble",
    "blend",
}
# Candidate generators small enough for the board, for both ranker backends. The
# clickstream ones read the board's sequences, which its labelled windows share with the
# full data (the window's label is in them), so they stay off here.
GENERATORS = [
    "model.generators.als.factors=2",
    "model.generators.item_knn.shrink=0.0",
    *(f"model.generators.{g}=null" for g in ("affinity", "transitions", "recently_viewed")),
]
# Settings that suit the 12-user board (the shipped defaults suit real data).
SMALL = {
    "ease": ["model.l2=1.0"],
    "item_knn": ["model.shrink=0.0"],
    "als": ["model.factors=2"],
    "implicit_bpr": ["model.factors=4", "model.learning_rate=0.05"],
    "bpr_mf": ["model.dim=8", "model.lr=0.05", "model.batch_size=16", "trainer.max_epochs=60"],
    "two_tower": ["model.dim=16", "model.lr=0.01", "model.batch_size=16", "model.dropout=0.0", "trainer.max_epochs=60"],
    "ranker": [
        *GENERATORS,
        "model.holdout=0.3",
        "model.batch_size=32",
        "model.lr=0.01",
        "model.patience=10",
        "trainer.max_epochs=30",
    ],
    "ranker_lgbm": [*GENERATORS, "model.holdout=0.3", "model.patience=0", "model.lightgbm.n_estimators=50"],
    "ranker_lgbm_ensemble": [
        *GENERATORS,
        "model.patience=0",
        "model.lightgbm.n_estimators=50",
        "model.lightgbm_cv_folds=3",
        "model.lightgbm_grid=null",
        "model.lightgbm_grid={num_leaves:[7,15]}",
    ],
    "sasrec": [
        "model.dim=16",
        "model.heads=1",
        "model.layers=1",
        "model.max_len=8",
        "model.dropout=0.2",
        "model.lr=0.01",
        "model.batch_size=16",
        "trainer.max_epochs=60",
    ],
}
# The blend's members at their own small settings.
SMALL["blend"] = [
    *(o.replace("model.", "model.members.sasrec.", 1) if o.startswith("model.") else o for o in SMALL["sasrec"]),
    "model.members.ease.l2=1.0",
    "model.members.ease.grid=null",
]


def make(name: str, *overrides: str) -> Recommender:
    cfg = compose("train", [f"model={name}", "trainer=smoke", *overrides])
    return instantiate(cfg.model, _convert_="all")


def _neural(name: str) -> bool:
    """Trained by the shared Lightning loop (early stopping, checkpoints)."""
    from hydra.utils import get_class

    from recsys_cli.models.lightning import NeuralRecommender

    return issubclass(get_class(compose("train", [f"model={name}"]).model._target_), NeuralRecommender)


def small(name: str, *overrides: str) -> Recommender:
    return make(name, *SMALL.get(name, []), *overrides)


@pytest.mark.parametrize("name", MODELS)
def test_scores_shapes_and_masks(name: str, board: tuple[TrainData, dict[str, str]]) -> None:
    data, _ = board
    model = small(name).fit(data)
    users = user_rows(data, ["u0", "u7", "never-seen"])
    assert users[-1] == 0
    assert model.score(users).shape == (3, data.n_items)
    assert np.isfinite(model.score(np.arange(data.n_users))).all()
    assert model.score(users, np.array([1, 2])).shape == (3, 2)
    top, scores = model.recommend(users, k=4)
    assert top.shape == scores.shape == (3, 4)
    assert (top != 0).all() and (np.diff(scores, axis=1) <= 0).all()
    seen = set(data.matrix[users[0]].nonzero()[1])
    assert not seen & set(top[0])
    np.testing.assert_array_equal(model.score(users[-1:])[0], model.popularity)  # cold-start fallback


@pytest.mark.parametrize("name", MODELS)
def test_deterministic_and_save_load_round_trip(
    name: str, board: tuple[TrainData, dict[str, str]], tmp_path: Path
) -> None:
    data, _ = board
    users = np.arange(data.n_users)
    first, second = small(name).fit(data), small(name).fit(data)
    np.testing.assert_array_equal(first.score(users), second.score(users))
    first.save(tmp_path / name)
    loaded = Recommender.load(tmp_path / name)
    np.testing.assert_allclose(loaded.score(users), first.score(users), rtol=1e-6)
    np.testing.assert_array_equal(loaded.recommend(users, 3)[0], first.recommend(users, 3)[0])


@pytest.mark.parametrize("name", sorted(PERSONAL & set(MODELS)))
def test_planted_signal_is_found(name: str, board: tuple[TrainData, dict[str, str]]) -> None:
    """Each user's first recommendation comes from their own group; for item
    models it is exactly the held-out item."""
    data, held_out = board
    model = small(name).fit(data)
    users = list(held_out)
    top, _ = model.recommend(user_rows(data, users), k=1)
    items = [data.items.tokens[i] for i in top[:, 0]]
    for user, item in zip(users, items, strict=True):
        group = "A" if held_out[user] in GROUPS["A"] else "B"
        assert item in GROUPS[group], (name, user, item)
        if name != "segment_popularity":
            assert item == held_out[user]


def test_popularity_cannot_tell_the_groups_apart(board: tuple[TrainData, dict[str, str]]) -> None:
    """Group B items are more popular, so group A users get B items: wrong."""
    data, held_out = board
    group_a = [u for u, item in held_out.items() if item in GROUPS["A"]]
    top, _ = make("popularity").fit(data).recommend(user_rows(data, group_a), k=1)
    assert all(data.items.tokens[i] in GROUPS["B"] for i in top[:, 0])


@pytest.mark.parametrize("name", [m for m in MODELS if _neural(m)])
def test_early_stopping_keeps_the_best_validation_score(
    name: str, board: tuple[TrainData, dict[str, str]], tmp_path: Path
) -> None:
    """The restored checkpoint scores exactly what training logged as its best."""
    from recsys_cli.models.validation import Targets
    from recsys_cli.tasks.train import evaluate

    data, held_out = board
    frame = pl.DataFrame({"user_id": list(held_out), "item_id": list(held_out.values())})
    targets = Targets.from_frame(frame, data)
    model = small(name).fit(data, validation=targets, workdir=tmp_path)
    measured = evaluate(model, targets, data.n_items, [10], 64, "")["ndcg@10"]
    assert model.best_score == pytest.approx(measured, abs=1e-6)
    if name != "ranker":  # the ranker's network is one stage of its fit
        assert model.diagnostics["seconds_to_best_epoch"] > 0
        # CPU time to the best epoch: what a shared machine does not stretch
        assert model.diagnostics["cpu_seconds_to_best_epoch"] > 0


@pytest.mark.parametrize("name", [*(m for m in MODELS if _neural(m)), "ranker"])
def test_mixed_precision_training_runs_the_same_code(
    name: str, board: tuple[TrainData, dict[str, str]], tmp_path: Path
) -> None:
    """bf16 autocast, which `precision: auto` picks on a GPU, through training,
    full-ranking validation and scoring; here on the CPU, where Lightning runs the
    same autocast path, so a dtype slip shows without a GPU."""
    import lightning.pytorch as L

    from recsys_cli.models.lightning import FIT_CALLBACKS
    from recsys_cli.models.validation import Targets

    class Precision(L.Callback):
        used: list[str] = []

        def on_train_batch_start(self, trainer: L.Trainer, *args: object) -> None:
            self.used.append(str(trainer.precision))

    data, held_out = board
    frame = pl.DataFrame({"user_id": list(held_out), "item_id": list(held_out.values())})
    token = FIT_CALLBACKS.set((Precision(),))
    try:
        model = small(name, "trainer.precision=bf16-mixed").fit(
            data, validation=Targets.from_frame(frame, data), workdir=tmp_path
        )
    finally:
        FIT_CALLBACKS.reset(token)
    assert Precision.used and set(Precision.used) == {"bf16-mixed"}
    scores = model.score(np.arange(data.n_users))
    assert scores.dtype == np.float32 and np.isfinite(scores).all()
    assert model.best_score is not None and 0.0 <= model.best_score <= 1.0


def test_precision_auto_is_mixed_on_a_gpu_and_full_on_the_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    from recsys_cli.models.lightning import trainer_options

    assert compose("train", []).trainer.precision == "auto"
    if not torch.cuda.is_available():
        assert trainer_options({"accelerator": "auto", "precision": "auto"})["precision"] == "32-true"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: True)
    assert trainer_options({"accelerator": "auto", "precision": "auto"})["precision"] == "bf16-mixed"
    assert trainer_options({"accelerator": "cpu", "precision": "auto"})["precision"] == "32-true"
    assert trainer_options({"accelerator": "gpu", "precision": "32-true"})["precision"] == "32-true"  # as asked
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: False)
    assert trainer_options({"accelerator": "gpu", "precision": "auto"})["precision"] == "16-mixed"
