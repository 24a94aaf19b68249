"""SASRec warm start: the item table follows its tokens, every other weight is the
production model's, a new product starts on its shelf, and a partial warm start
trains only new products' rows and the last encoder layer.

Two shelves of five products; each user walks one shelf in order, round and round.
The newer window drops one user, adds a product to each shelf (a5 after a4, b5
after b4) in some users' walks, and brings new users."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest
import torch

from recsys_cli.data.schema import Col
from recsys_cli.features.vocab import Vocabulary
from recsys_cli.models.base import Recommender
from recsys_cli.models.data import TrainData, interaction_matrix
from recsys_cli.models.sasrec import SASRec
from recsys_cli.models.warm_start import WarmStartError

SMOKE = {"max_epochs": 8, "accelerator": "cpu", "devices": 1, "precision": "32-true", "enable_progress_bar": False}


def _walk(shelf: str, size: int, start: int, steps: int) -> list[str]:
    return [f"{shelf}{(start + s) % size}" for s in range(steps)]


def _histories(new: bool) -> dict[str, list[str]]:
    out = {f"u{g}{j}": _walk(shelf, 5, j, 12) for g, shelf in enumerate("ab") for j in range(10)}
    if not new:
        return {**out, "u_gone": _walk("b", 5, 0, 6)}
    for g, shelf in enumerate("ab"):
        out |= {f"n{g}{j}": _walk(shelf, 6, j, 12) for j in range(6)}  # walks through the new product
    return out


def _data(new: bool) -> TrainData:
    histories = _histories(new)
    inter = pl.DataFrame(
        [(u, i, 1.0) for u, h in histories.items() for i in h], schema=[Col.USER, Col.ITEM, "weight"], orient="row"
    ).unique([Col.USER, Col.ITEM])
    users, items = Vocabulary.fit(inter[Col.USER]), Vocabulary.fit(inter[Col.ITEM])
    catalogue = pl.DataFrame({Col.ITEM: items.tokens[1:], Col.CATEGORY: [t[0] for t in items.tokens[1:]]})
    sequences = pl.DataFrame({Col.USER: list(histories), "items": list(histories.values())})
    return TrainData(
        users, items, interaction_matrix(inter, users, items), item_features=catalogue, sequences=sequences
    )


OLD, NEW = _data(new=False), _data(new=True)


def _model(**params: object) -> SASRec:
    base = {"max_len": 8, "dim": 8, "heads": 1, "layers": 2, "dropout": 0.0, "lr": 0.01, "batch_size": 16}
    return SASRec(**{**base, **params}, seed=3, trainer=SMOKE)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def previous() -> SASRec:
    return _model().fit(OLD)  # type: ignore[return-value]


def _item_rows(model: Recommender, tokens: list[str]) -> np.ndarray:
    assert isinstance(model, SASRec) and model.module is not None and model.items is not None
    index = [model.items.tokens.index(t) for t in tokens]
    return model.module.item.weight.detach().numpy()[index]


OLD_ITEMS = [f"{s}{i}" for s in "ab" for i in range(5)]


def test_zero_epochs_carry_every_weight_and_the_item_rows_by_token(previous: SASRec) -> None:
    warm = _model().warm_start(previous, NEW, epochs=0)
    np.testing.assert_array_equal(_item_rows(warm, OLD_ITEMS), _item_rows(previous, OLD_ITEMS))
    assert isinstance(warm, SASRec) and warm.module is not None and previous.module is not None
    before, after = previous.module.state_dict(), warm.module.state_dict()
    for name in before:
        if name.startswith(("encoder.", "position.", "norm.")):
            torch.testing.assert_close(after[name], before[name])
    # An old user whose walk is unchanged is scored as before on the old products.
    user = "u03"
    old_scores = previous.score(OLD.user_index(pl.Series([user])))[0][[OLD.items.tokens.index(t) for t in OLD_ITEMS]]
    new_scores = warm.score(NEW.user_index(pl.Series([user])))[0][[NEW.items.tokens.index(t) for t in OLD_ITEMS]]
    np.testing.assert_allclose(new_scores, old_scores, rtol=1e-5, atol=1e-5)
    assert warm.diagnostics["warm_start/items_new"] == 2.0 and warm.diagnostics["warm_start/users_dropped"] == 1.0


def test_a_new_product_starts_on_its_shelf_and_is_not_degenerate(previous: SASRec) -> None:
    warm = _model().warm_start(previous, NEW, epochs=0)
    a5, b5 = _item_rows(warm, ["a5", "b5"])
    shelf_a, shelf_b = _item_rows(previous, OLD_ITEMS[:5]).mean(0), _item_rows(previous, OLD_ITEMS[5:]).mean(0)
    assert np.isfinite([a5, b5]).all() and not np.allclose(a5, b5)
    # Closer to its own shelf's mean than to the other shelf's.
    assert np.linalg.norm(a5 - shelf_a) < np.linalg.norm(a5 - shelf_b)
    assert np.linalg.norm(b5 - shelf_b) < np.linalg.norm(b5 - shelf_a)


def test_after_fine_tuning_a_new_product_follows_what_leads_to_it(previous: SASRec) -> None:
    warm = _model().warm_start(previous, NEW, epochs=6)
    walker = NEW.user_index(pl.Series(["n00"]))  # walks a0..a5; its history ends where a5 is next or near
    top, _ = warm.recommend(walker, k=3, exclude_seen=False)
    assert {NEW.items.tokens[i] for i in top[0]} <= {f"a{i}" for i in range(6)}


def test_only_new_trains_new_rows_and_the_last_layer_alone(previous: SASRec) -> None:
    warm = _model().warm_start(previous, NEW, epochs=3, only_new=True)
    assert isinstance(warm, SASRec) and warm.module is not None and previous.module is not None
    np.testing.assert_array_equal(_item_rows(warm, OLD_ITEMS), _item_rows(previous, OLD_ITEMS))
    before, after = previous.module.state_dict(), warm.module.state_dict()
    for name in before:
        if name.startswith(("encoder.layers.0.", "position.")):
            torch.testing.assert_close(after[name], before[name])
    moved = [n for n in before if n.startswith("encoder.layers.1.") and not torch.equal(after[n], before[n])]
    assert moved  # the last layer trained


def test_another_architecture_is_refused(previous: SASRec) -> None:
    with pytest.raises(WarmStartError, match="keeps the architecture"):
        _model(layers=1).warm_start(previous, NEW)


def test_a_warm_started_sasrec_saves_and_loads(previous: SASRec, tmp_path: Path) -> None:
    warm = _model().warm_start(previous, NEW, epochs=1)
    warm.save(tmp_path / "m")
    users = np.arange(NEW.n_users)
    np.testing.assert_allclose(Recommender.load(tmp_path / "m").score(users), warm.score(users), rtol=1e-5)
