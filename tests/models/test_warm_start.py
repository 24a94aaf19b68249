"""Warm start: a model refitted on a newer window starts from the production model.

The old window is the checkerboard shop (two taste groups, A and B, each user has
met all but one item of their group). The newer window keeps it, loses one user
and the one product only that user met, and brings two new products (a5 on shelf
A, b5 on shelf B, each met by five old users of its group) and ten new users who
met three items of their group and its new product. Vocabularies are rebuilt by
frequency, so every index moves: rows must follow their tokens.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from recsys_cli.data.schema import Col
from recsys_cli.features.vocab import Vocabulary
from recsys_cli.models.base import Recommender
from recsys_cli.models.bpr_mf import BPRMF
from recsys_cli.models.data import TrainData, interaction_matrix
from recsys_cli.models.ease import EASE
from recsys_cli.models.implicit_mf import ALS, ImplicitBPR
from recsys_cli.models.item_knn import ItemKNN
from recsys_cli.models.popularity import Popularity
from recsys_cli.models.warm_start import RowMap, WarmStartError, category_means

SHELF = {"A": [f"a{i}" for i in range(6)], "B": [f"b{i}" for i in range(6)]}
NEW_ITEMS = ["a5", "b5"]
NEW_USERS = [f"n{i}" for i in range(10)]
SMOKE = {"max_epochs": 60, "accelerator": "cpu", "devices": 1, "precision": "32-true", "enable_progress_bar": False}


def _old_events() -> list[tuple[str, str, float]]:
    rows = []
    for g, items in enumerate((SHELF["A"][:5], SHELF["B"][:5])):
        for j in range(20):
            rows += [(f"u{g * 20 + j}", item, 1.0) for item in items if item != items[j % 5]]
    return [*rows, *(("u_gone", item, 1.0) for item in (*SHELF["B"][:5], "z_gone"))]


def _new_events() -> list[tuple[str, str, float]]:
    rows = [row for row in _old_events() if row[0] != "u_gone"]
    for g, group in enumerate(("A", "B")):
        items, product = SHELF[group], SHELF[group][5]
        rows += [(f"u{g * 20 + j}", product, 1.0) for j in range(5)]
        rows += [(f"n{g * 5 + j}", item, 1.0) for j in range(5) for item in (*items[:3], product)]
    return rows


def _data(rows: list[tuple[str, str, float]]) -> TrainData:
    inter = pl.DataFrame(rows, schema=[Col.USER, Col.ITEM, "weight"], orient="row")
    users, items = Vocabulary.fit(inter[Col.USER]), Vocabulary.fit(inter[Col.ITEM])
    shelf = {item: f"shelf_{g}" for g, members in SHELF.items() for item in members} | {"z_gone": "shelf_B"}
    catalogue = pl.DataFrame({Col.ITEM: list(shelf), Col.CATEGORY: list(shelf.values())})
    return TrainData(users, items, interaction_matrix(inter, users, items), item_features=catalogue)


OLD, NEW = _data(_old_events()), _data(_new_events())
OLD_USERS = [t for t in OLD.users.tokens[1:] if t in NEW.users.tokens]
OLD_ITEMS = [t for t in OLD.items.tokens[1:] if t in NEW.items.tokens]


def _als(seed: int = 0) -> ALS:
    return ALS(factors=2, seed=seed)


def _bpr(seed: int = 42) -> BPRMF:
    return BPRMF(dim=8, lr=0.05, batch_size=16, seed=seed, trainer=SMOKE)


MODELS: dict[str, Callable[[], Recommender]] = {"als": _als, "bpr_mf": _bpr}


@pytest.fixture(scope="module", params=list(MODELS))
def previous(request: pytest.FixtureRequest) -> tuple[str, Recommender]:
    """The production model, fitted on the old window."""
    return request.param, MODELS[request.param]().fit(OLD)


def _rows(vocab: Vocabulary, tokens: list[str]) -> np.ndarray:
    return np.array([vocab.tokens.index(t) for t in tokens])


def _old_block(model: Recommender, data: TrainData) -> np.ndarray:
    """Scores of the users and items both windows know, in one fixed order."""
    return model.score(_rows(data.users, OLD_USERS))[:, _rows(data.items, OLD_ITEMS)]


def _top_unseen(model: Recommender, data: TrainData) -> list[str]:
    """Each old user's best old item among those they have not met: on the
    checkerboard, the item of their group they skipped."""
    scores = _old_block(model, data)
    seen = data.interacted()[_rows(data.users, OLD_USERS)][:, _rows(data.items, OLD_ITEMS)].toarray() > 0
    scores[seen] = -np.inf
    return [OLD_ITEMS[i] for i in scores.argmax(axis=1)]


def test_rows_follow_their_tokens_not_their_indices() -> None:
    rows = RowMap.between(OLD.users, NEW.users)
    carried = rows.kept & (np.arange(len(NEW.users)) > 0)
    assert [NEW.users.tokens[i] for i in np.flatnonzero(carried)] == [OLD.users.tokens[j] for j in rows.source[carried]]
    assert sorted(NEW.users.tokens[i] for i in rows.new) == sorted(NEW_USERS)
    assert rows.counts(len(OLD.users)) == {"carried": 40.0, "new": 10.0, "dropped": 1.0}


def test_old_scores_stay_close_to_the_production_model(previous: tuple[str, Recommender]) -> None:
    """Every old user's best unseen old item is the one it was before, and the old
    users x old items scores correlate at 0.95 or more with before. For scale: two
    BPR-MF fits of the old window itself from different seeds correlate at 0.91,
    so the warm start moves old scores less than the model's own seed does."""
    name, prev = previous
    warm = MODELS[name]().warm_start(prev, NEW)
    assert _top_unseen(warm, NEW) == _top_unseen(prev, OLD)
    before, after = _old_block(prev, OLD).ravel(), _old_block(warm, NEW).ravel()
    assert np.corrcoef(before, after)[0, 1] >= 0.95


@pytest.mark.parametrize(("epochs", "only_new"), [(None, False), (None, True), (0, False)])
def test_new_items_get_vectors_of_their_group(
    previous: tuple[str, Recommender], epochs: int | None, only_new: bool
) -> None:
    """Not zero, not equal to each other, and scored above the other shelf's items by
    old users of the group that met them (those who did not meet them too); already
    where they start, before any training (epochs=0)."""
    name, prev = previous
    warm = MODELS[name]().warm_start(prev, NEW, epochs=epochs, only_new=only_new)
    vectors = warm.item_vectors()
    assert vectors is not None
    a5, b5 = vectors[_rows(NEW.items, NEW_ITEMS)]
    assert np.linalg.norm(a5) > 0.1 and np.linalg.norm(b5) > 0.1
    assert not np.allclose(a5, b5)
    # the old users who never met the new products, per group
    groups = {g: _rows(NEW.users, [f"u{k * 20 + j}" for j in range(5, 20)]) for k, g in enumerate(("A", "B"))}
    for group, other in (("A", "B"), ("B", "A")):
        product = _rows(NEW.items, [SHELF[group][5]])[0]
        scores = warm.score(groups[group])
        assert (scores[:, product] > scores[:, _rows(NEW.items, SHELF[other][:5])].max(axis=1)).all(), (name, group)
        assert scores[:, product].min() > warm.score(groups[other])[:, product].max(), (name, group)


def test_new_users_are_scored_by_what_they_met(previous: tuple[str, Recommender]) -> None:
    name, prev = previous
    warm = MODELS[name]().warm_start(prev, NEW)
    top, _ = warm.recommend(_rows(NEW.users, NEW_USERS), k=1)
    shelves = ["A" if NEW.items.tokens[i] in SHELF["A"] else "B" for i in top[:, 0]]
    assert shelves == ["A"] * 5 + ["B"] * 5


def test_only_new_leaves_the_carried_rows_bit_for_bit(previous: tuple[str, Recommender]) -> None:
    name, prev = previous
    warm = MODELS[name]().warm_start(prev, NEW, only_new=True)
    before, after = prev.item_vectors(), warm.item_vectors()
    assert before is not None and after is not None
    np.testing.assert_array_equal(after[_rows(NEW.items, OLD_ITEMS)], before[_rows(OLD.items, OLD_ITEMS)])
    np.testing.assert_array_equal(
        warm.user_vectors(_rows(NEW.users, OLD_USERS)), prev.user_vectors(_rows(OLD.users, OLD_USERS))
    )
    # ...while the new rows did train: they differ from where they started
    started = MODELS[name]().warm_start(prev, NEW, epochs=0, only_new=True).item_vectors()
    assert started is not None
    assert not np.array_equal(after[_rows(NEW.items, NEW_ITEMS)], started[_rows(NEW.items, NEW_ITEMS)])


def test_warm_start_is_deterministic(previous: tuple[str, Recommender]) -> None:
    name, prev = previous
    users = np.arange(NEW.n_users)
    first = MODELS[name]().warm_start(prev, NEW).score(users)
    np.testing.assert_array_equal(first, MODELS[name]().warm_start(prev, NEW).score(users))


def test_zero_epochs_carry_the_rows_and_only_start_the_new_ones(previous: tuple[str, Recommender]) -> None:
    name, prev = previous
    warm = MODELS[name]().warm_start(prev, NEW, epochs=0)
    np.testing.assert_array_equal(_old_block(warm, NEW), _old_block(prev, OLD))
    assert warm.diagnostics["warm_start/items_new"] == 2.0
    assert warm.diagnostics["warm_start/users_dropped"] == 1.0


def test_a_warm_started_model_saves_and_loads(previous: tuple[str, Recommender], tmp_path: Path) -> None:
    name, prev = previous
    warm = MODELS[name]().warm_start(prev, NEW)
    folder = tmp_path / name
    warm.save(folder)
    users = np.arange(NEW.n_users)
    np.testing.assert_allclose(Recommender.load(folder).score(users), warm.score(users), rtol=1e-6)


def test_a_new_item_starts_at_its_shelf() -> None:
    """Before any training, a new product's row is the mean of its category's carried
    items (BPR-MF adds its own small random start to it)."""
    rows = np.zeros((NEW.n_items, 2), dtype=np.float32)
    rows[_rows(NEW.items, SHELF["A"][:5])] = [1.0, 0.0]
    rows[_rows(NEW.items, SHELF["B"][:5])] = [0.0, 1.0]
    known = RowMap.between(OLD.items, NEW.items).kept
    means = category_means(NEW, rows, known)
    np.testing.assert_array_equal(means[_rows(NEW.items, NEW_ITEMS)], [[1.0, 0.0], [0.0, 1.0]])


@pytest.mark.parametrize(
    "model",
    [Popularity(), ItemKNN(), EASE(), ImplicitBPR(factors=4)],
    ids=lambda m: type(m).__name__,
)
def test_a_model_that_cannot_warm_start_says_so(model: Recommender) -> None:
    """Closed-form fits are already exact and cheap: they are refitted from scratch."""
    assert not model.supports_warm_start
    with pytest.raises(WarmStartError, match="cannot warm start.*fit it from scratch"):
        model.warm_start(model, NEW)


def test_the_previous_model_must_be_of_the_same_kind_and_size() -> None:
    als = _als().fit(OLD)
    with pytest.raises(WarmStartError, match="cannot warm start from a BPRMF"):
        _als().warm_start(_bpr().fit(OLD), NEW)
    with pytest.raises(WarmStartError, match="model.factors=3 but the previous ALS has 2"):
        ALS(factors=3).warm_start(als, NEW)
