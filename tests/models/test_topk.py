"""Top-k lists order equal scores by a rule: the model's tie key, then item index."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

from recsys_cli.features.vocab import Vocabulary
from recsys_cli.models.base import Recommender
from recsys_cli.models.data import TrainData
from recsys_cli.models.topk import top_indices
from recsys_cli.models.validation import Targets


def full_order(scores: np.ndarray, tiebreak: np.ndarray | None) -> np.ndarray:
    """The rule, spelt out as one sort of whole rows."""
    index = np.broadcast_to(np.arange(scores.shape[1]), scores.shape)
    keys = (index, -scores) if tiebreak is None else (index, -tiebreak, -scores)
    return np.lexsort(keys, axis=1)


def test_equal_scores_across_the_cut_go_by_the_tie_key() -> None:
    # Items 1..6 share one calibrated probability (an isotonic step); their raw
    # scores decide which three of them make a top-4 below item 7.
    calibrated = np.array([[0.1, 0.3, 0.3, 0.3, 0.3, 0.3, 0.3, 0.7]], dtype=np.float32)
    raw = np.array([[0.0, 0.2, 0.9, 0.5, 0.8, 0.1, 0.4, 2.0]])
    assert top_indices(calibrated, 4, raw).tolist() == [[7, 2, 4, 3]]
    assert top_indices(calibrated, 4).tolist() == [[7, 1, 2, 3]]  # no key: the lower index


@pytest.mark.parametrize("with_key", [False, True])
def test_random_ties_follow_the_rule(with_key: bool) -> None:
    rng = np.random.default_rng(11)
    scores = rng.integers(0, 5, (300, 40)).astype(np.float32)
    scores[rng.random(scores.shape) < 0.1] = -np.inf
    key = rng.integers(0, 3, scores.shape).astype(np.float64) if with_key else None
    for k in (1, 7, 40):
        np.testing.assert_array_equal(top_indices(scores, k, key), full_order(scores, key)[:, :k])


class Fixed(Recommender):
    """Scores and tie key given up front: what a calibrated ranker hands `top_k`."""

    def __init__(self, scores: np.ndarray, tiebreak: np.ndarray | None) -> None:
        super().__init__()
        self.fixed, self.key = scores, tiebreak

    def _fit(self, data: TrainData, validation: Targets | None, workdir: Path | None) -> None:
        pass

    def _score(self, users: np.ndarray) -> np.ndarray:
        return self.fixed[users]

    def _score_with_tiebreak(self, users: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        return self.fixed[users], None if self.key is None else self.key[users].copy()

    def _state(self) -> dict[str, np.ndarray]:
        return {}

    def _load_state(self, state: dict[str, np.ndarray]) -> None:
        pass


def fitted(scores: np.ndarray, tiebreak: np.ndarray | None, seen: sp.csr_matrix) -> Fixed:
    n_users, n_items = scores.shape
    data = TrainData(
        Vocabulary(tuple(f"u{i}" for i in range(n_users))), Vocabulary(tuple(f"i{j}" for j in range(n_items))), seen
    )
    model = Fixed(scores, tiebreak)
    model.fit(data)
    return model


def test_recommend_ranks_calibrated_ties_by_the_raw_score_every_time() -> None:
    """A calibrated float32 matrix where isotonic steps tie a third of each row, the
    raw float64 scores apart: the lists follow (probability, raw), identical on a
    second call, and the scores they report are the calibrated probabilities."""
    rng = np.random.default_rng(5)
    n_users, n_items = 60, 50
    raw = rng.normal(size=(n_users, n_items))
    steps = np.array([-np.inf, -0.5, 0.0, 0.5, np.inf])
    calibrated = (np.searchsorted(steps, raw) / 10.0).astype(np.float32)  # 4 probabilities per row
    seen = sp.random(n_users, n_items, density=0.1, random_state=3, format="csr")
    seen.data[:] = 1.0
    model = fitted(calibrated, raw, seen)
    users = np.arange(1, n_users)
    top, scores = model.recommend(users, 10)
    again, _ = model.recommend(users, 10)
    np.testing.assert_array_equal(top, again)
    masked = raw[users].copy()
    masked[:, 0] = -np.inf
    masked[seen[users].toarray() > 0] = -np.inf
    np.testing.assert_array_equal(top, np.argsort(-masked, axis=1, kind="stable")[:, :10])  # the raw order
    np.testing.assert_array_equal(scores, np.take_along_axis(calibrated[users], top, axis=1))
    # The cut falls inside a step for most users: without the raw score the lists differ.
    plain, _ = fitted(calibrated, None, seen).recommend(users, 10)
    assert (plain != top).any(axis=1).mean() > 0.5


def test_unknown_users_get_popularity_ordered_by_item_index_on_ties() -> None:
    scores = np.zeros((3, 6), dtype=np.float32)
    seen = sp.csr_matrix(np.array([[0, 0, 0, 0, 0, 0], [0, 1, 1, 0, 0, 0], [0, 0, 0, 1, 1, 0]], dtype=np.float32))
    model = fitted(scores, np.ones((3, 6)), seen)  # popularity: items 1..4 once, item 5 never
    top, _ = model.recommend(np.array([0, 0]), 5, exclude_seen=False)
    assert top.tolist() == [[1, 2, 3, 4, 5]] * 2


@pytest.mark.parametrize("with_key", [False, True])
def test_large_matrices_take_the_fast_selection_and_the_same_lists(
    with_key: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Above `TORCH_FROM` entries the k largest are selected by torch, which picks
    among equals at the cut as it likes: the rule's lists come out all the same."""
    import recsys_cli.models.topk as topk

    rng = np.random.default_rng(12)
    scores = rng.integers(0, 6, (200, 300)).astype(np.float32)  # heavy ties at every cut
    scores[:50] = rng.normal(size=(50, 300)).astype(np.float32)  # and rows without ties
    scores[rng.random(scores.shape) < 0.05] = -np.inf
    key = rng.integers(0, 3, scores.shape).astype(np.float64) if with_key else None
    monkeypatch.setattr(topk, "TORCH_FROM", scores.size)
    for k in (1, 10, 299):
        np.testing.assert_array_equal(top_indices(scores, k, key), full_order(scores, key)[:, :k])
