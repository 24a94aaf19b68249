"""Two-tower warm start: id rows follow their tokens, a category's row follows the
category (its code moves when the catalogue's categories are counted anew), the
towers' networks are the production model's, and a partial warm start trains only
new rows and the towers' last layers.

The checkerboard shop of test_warm_start.py (two shelves; the newer window adds a
product to each and ten new users), plus, in the newer window, a third shelf of
eight products and its first ten shoppers: the most frequent category, so every
shelf's code changes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest

from recsys_cli.data.schema import Col
from recsys_cli.features.vocab import Vocabulary
from recsys_cli.models.base import Recommender
from recsys_cli.models.data import TrainData, interaction_matrix
from recsys_cli.models.two_tower import TwoTower
from recsys_cli.models.warm_start import WarmStartError
from tests.models.test_warm_start import NEW_ITEMS, NEW_USERS, SHELF, _new_events, _old_events

SMOKE = {"max_epochs": 40, "accelerator": "cpu", "devices": 1, "precision": "32-true", "enable_progress_bar": False}
SHELF_C = [f"c{i}" for i in range(8)]


def _data(rows: list[tuple[str, str, float]], third_shelf: bool) -> TrainData:
    inter = pl.DataFrame(rows, schema=[Col.USER, Col.ITEM, "weight"], orient="row")
    users, items = Vocabulary.fit(inter[Col.USER]), Vocabulary.fit(inter[Col.ITEM])
    shelf = {item: f"shelf_{g}" for g, members in SHELF.items() for item in members} | {"z_gone": "shelf_B"}
    if third_shelf:
        shelf |= dict.fromkeys(SHELF_C, "shelf_C")
    catalogue = pl.DataFrame({Col.ITEM: list(shelf), Col.CATEGORY: list(shelf.values())})
    return TrainData(users, items, interaction_matrix(inter, users, items), item_features=catalogue)


THIRD = [(f"m{j}", item, 1.0) for j in range(10) for item in SHELF_C]  # its first shoppers
OLD, NEW = _data(_old_events(), third_shelf=False), _data(_new_events() + THIRD, third_shelf=True)
OLD_USERS = [t for t in OLD.users.tokens[1:] if t in NEW.users.tokens]
OLD_ITEMS = [t for t in OLD.items.tokens[1:] if t in NEW.items.tokens]


def _model(**params: object) -> TwoTower:
    base = {"dim": 16, "lr": 0.01, "batch_size": 16, "dropout": 0.0}
    return TwoTower(**{**base, **params}, seed=5, trainer=SMOKE)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def previous() -> TwoTower:
    return _model().fit(OLD)  # type: ignore[return-value]


def _rows(vocab: Vocabulary, tokens: list[str]) -> np.ndarray:
    return np.array([vocab.tokens.index(t) for t in tokens])


def _category_row(model: TwoTower, data: TrainData, item: str) -> np.ndarray:
    """The item tower's category embedding row of `item`'s category."""
    assert model.module is not None
    code = int(model.module.item_cat[_rows(data.items, [item])[0], 0])
    return model.module.item_tower.categorical[0].weight.detach().numpy()[code]


def test_zero_epochs_score_old_users_and_items_as_before(previous: TwoTower) -> None:
    warm = _model().warm_start(previous, NEW, epochs=0)
    before = previous.score(_rows(OLD.users, OLD_USERS))[:, _rows(OLD.items, OLD_ITEMS)]
    after = warm.score(_rows(NEW.users, OLD_USERS))[:, _rows(NEW.items, OLD_ITEMS)]
    np.testing.assert_allclose(after, before, rtol=1e-5, atol=1e-6)


def test_a_category_keeps_its_row_though_its_code_moved(previous: TwoTower) -> None:
    warm = _model().warm_start(previous, NEW, epochs=0)
    assert isinstance(warm, TwoTower) and warm.module is not None and previous.module is not None
    moved = []
    for item in ("a0", "b0"):
        old_code = int(previous.module.item_cat[_rows(OLD.items, [item])[0], 0])
        moved.append(old_code != int(warm.module.item_cat[_rows(NEW.items, [item])[0], 0]))
        np.testing.assert_array_equal(_category_row(warm, NEW, item), _category_row(previous, OLD, item))
    assert any(moved)  # shelf_C, the biggest shelf now, took the first code
    # The new shelf starts where the module's own initialisation put it: no old row.
    table = warm.module.item_tower.categorical[0].weight.detach().numpy()
    shelves = {int(warm.module.item_cat[_rows(NEW.items, [item])[0], 0]) for item in ("a0", "b0")}
    fresh = [code for code in range(1, table.shape[0]) if code not in shelves]
    old_rows = previous.module.item_tower.categorical[0].weight.detach().numpy()
    assert fresh and not any(np.allclose(table[code], row) for code in fresh for row in old_rows)


def test_new_products_and_users_land_on_their_shelf(previous: TwoTower) -> None:
    warm = _model().warm_start(previous, NEW)
    groups = {g: _rows(NEW.users, [f"u{k * 20 + j}" for j in range(5, 20)]) for k, g in enumerate(("A", "B"))}
    for group, other in (("A", "B"), ("B", "A")):
        product = _rows(NEW.items, [SHELF[group][5]])[0]
        scores = warm.score(groups[group])
        assert np.median(scores[:, product]) > np.median(scores[:, _rows(NEW.items, SHELF[other][:5])])
    top, _ = warm.recommend(_rows(NEW.users, NEW_USERS), k=1)
    shelves = ["A" if NEW.items.tokens[i] in SHELF["A"] else "B" for i in top[:, 0]]
    assert shelves == ["A"] * 5 + ["B"] * 5


def test_only_new_trains_new_rows_and_the_last_layers_alone(previous: TwoTower) -> None:
    warm = _model().warm_start(previous, NEW, epochs=3, only_new=True)
    assert isinstance(warm, TwoTower) and warm.module is not None and previous.module is not None
    before, after = previous.module.state_dict(), warm.module.state_dict()
    for name in ("user_tower.mlp.0.weight", "item_tower.mlp.0.weight", "item_tower.mlp.0.bias"):
        np.testing.assert_array_equal(after[name].numpy(), before[name].numpy())
    old_ids = after["item_tower.id.weight"].numpy()[_rows(NEW.items, OLD_ITEMS)]
    np.testing.assert_array_equal(old_ids, before["item_tower.id.weight"].numpy()[_rows(OLD.items, OLD_ITEMS)])
    assert not np.array_equal(after["item_tower.mlp.3.weight"].numpy(), before["item_tower.mlp.3.weight"].numpy())
    started = _model().warm_start(previous, NEW, epochs=0, only_new=True)
    assert isinstance(started, TwoTower) and started.module is not None
    new_rows = _rows(NEW.items, NEW_ITEMS)
    trained, initial = after["item_tower.id.weight"].numpy(), started.module.state_dict()["item_tower.id.weight"]
    assert not np.array_equal(trained[new_rows], initial.numpy()[new_rows])


def test_another_architecture_or_other_side_features_are_refused(previous: TwoTower) -> None:
    with pytest.raises(WarmStartError, match="keeps the architecture"):
        _model(dim=8).warm_start(previous, NEW)
    with pytest.raises(WarmStartError, match="side features differ"):
        _model(side_features=False).warm_start(previous, NEW)


def test_a_warm_started_two_tower_saves_and_loads(previous: TwoTower, tmp_path: Path) -> None:
    warm = _model().warm_start(previous, NEW, epochs=1)
    warm.save(tmp_path / "m")
    users = np.arange(NEW.n_users)
    np.testing.assert_allclose(Recommender.load(tmp_path / "m").score(users), warm.score(users), rtol=1e-5)
