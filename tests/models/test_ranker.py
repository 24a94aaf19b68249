"""The ranker's early-stopping metric: NDCG@k of each candidate list, by group."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import ndcg_score

from recsys_cli.models.dcn import grouped_ndcg


def test_grouped_ndcg_by_hand() -> None:
    # Group 0: the positive is ranked second -> 1 / log2(3). Group 1: first -> 1.
    # Group 2 has no positive and is left out of the mean.
    group = np.array([0, 0, 0, 1, 1, 2, 2])
    scores = np.array([0.9, 0.5, 0.1, 0.2, 0.1, 0.3, 0.4])
    labels = np.array([0, 1, 0, 1, 0, 0, 0])
    assert grouped_ndcg(group, scores, labels, k=10) == pytest.approx((1 / np.log2(3) + 1) / 2)


def test_grouped_ndcg_matches_scikit_learn_per_group() -> None:
    rng = np.random.default_rng(5)
    sizes = rng.integers(5, 30, 40)
    group = np.repeat(np.arange(sizes.size), sizes)
    scores = rng.normal(size=group.size)
    labels = (rng.uniform(size=group.size) < 0.2).astype(float)
    expected = [
        ndcg_score(labels[group == g][None, :], scores[group == g][None, :], k=10)
        for g in range(sizes.size)
        if labels[group == g].any()
    ]
    assert grouped_ndcg(group, scores, labels, k=10) == pytest.approx(np.mean(expected))


def test_the_restored_network_scores_what_early_stopping_logged() -> None:
    from tests.models.conftest import checkerboard
    from tests.models.test_contract import SMALL, make

    data, _ = checkerboard()
    model = make("ranker", *SMALL["ranker"]).fit(data)
    assert model.tables is not None and model.best_score is not None
    _, held = model._examples(data.windows, model.tables)
    assert grouped_ndcg(held[1], model._logits(held[0]), held[2], 10) == pytest.approx(model.best_score, abs=1e-6)


def test_probabilities_stay_probabilities_for_unknown_users() -> None:
    """An unknown user's ranking falls back to popularity counts, but the ranker's
    probability for them is its own estimate, never a clipped count."""
    from tests.models.conftest import checkerboard
    from tests.models.test_contract import SMALL, make

    data, _ = checkerboard()
    model = make("ranker_lgbm", *SMALL["ranker_lgbm"]).fit(data)
    items = np.arange(1, data.n_items)
    cold = model.predict_proba(np.zeros(items.size, dtype=np.int64), items)
    assert ((cold >= 0.0) & (cold <= 1.0)).all()
    assert model.score(np.array([0]))[0, 1:].max() > 1.0  # the ranking: raw popularity counts
    assert cold.max() < 1.0


def test_calibrated_ties_are_ranked_by_the_raw_score() -> None:
    """An isotonic map gives whole ranges of raw scores one probability, and float32
    merges more: the ranker's lists follow its raw scores across the top-k cut
    (every candidate is above every other item), the same on every call, and
    report the calibrated probabilities themselves."""
    from recsys_cli.models.calibration import apply_calibration
    from recsys_cli.models.ranker import TwoStageRanker
    from tests.models.conftest import checkerboard
    from tests.models.test_contract import SMALL, make

    data, _ = checkerboard()
    model = make("ranker_lgbm", *SMALL["ranker_lgbm"]).fit(data)
    assert isinstance(model, TwoStageRanker)
    users = np.arange(1, data.n_users)
    _, raw = model._score_with_tiebreak(users)
    # A coarse isotonic map: two steps, so most candidates of a user share a probability.
    middle = float(np.median(raw[np.isfinite(raw)]))
    model.params["calibration"], model.calibration = "isotonic", np.array([middle, middle + 1e-9, 0.2, 0.6])
    calibrated, raw = model._score_with_tiebreak(users)
    assert (calibrated == np.float32(0.2)).sum() > users.size  # ties within users' lists
    k = 4
    top, scores = model.recommend(users, k, exclude_seen=False)
    np.testing.assert_array_equal(top, model.recommend(users, k, exclude_seen=False)[0])
    masked = np.where(np.isfinite(raw), raw, -np.inf)
    masked[:, 0] = -np.inf
    expected = np.argsort(-masked, axis=1, kind="stable")[:, :k]
    candidates = np.isfinite(np.take_along_axis(masked, expected, axis=1)).all(axis=1)
    assert candidates.mean() > 0.9
    np.testing.assert_array_equal(top[candidates], expected[candidates])
    probabilities = apply_calibration("isotonic", model.calibration, np.take_along_axis(raw, top, axis=1))
    np.testing.assert_array_equal(scores[candidates], probabilities[candidates].astype(np.float32))


def test_a_generator_set_to_null_is_off_and_negatives_must_be_positive() -> None:
    """A preset drops a generator its base config lists by setting it to null (the
    shop defaults leave EASE's dense inversion out; MovieLens' preset keeps it)."""
    from recsys_cli.errors import ConfigError
    from recsys_cli.models.ranker import TwoStageRanker

    spec = {"_target_": "recsys_cli.models.popularity.Popularity"}
    model = TwoStageRanker(generators={"pop": spec, "ease": None}, negatives=5)
    assert list(model.params["generators"]) == ["pop"]
    with pytest.raises(ConfigError, match="at least one candidate generator"):
        TwoStageRanker(generators={"ease": None})
    for bad in (0, -3, 2.5, True):
        with pytest.raises(ConfigError, match="model.negatives"):
            TwoStageRanker(generators={"pop": spec}, negatives=bad)


def test_sampled_negatives_train_a_ranker_that_still_ranks_the_board() -> None:
    """With a few sampled negatives per list the LightGBM ranker still learns the
    checkerboard, and its calibration map fits the weighted held-out lists."""
    from tests.models.conftest import checkerboard
    from tests.models.test_contract import SMALL, make

    data, _ = checkerboard()
    model = make("ranker_lgbm", *SMALL["ranker_lgbm"], "model.negatives=2").fit(data)
    full = make("ranker_lgbm", *SMALL["ranker_lgbm"], "model.negatives=null").fit(data)
    sampled = model._labelled(data.windows, model.tables)
    whole = full._labelled(data.windows, full.tables)
    assert sampled[2].size < whole[2].size
    assert sampled[2].sum() <= whole[2].sum() and sampled[2].sum() > 0
    users = np.arange(1, data.n_users)
    top, _ = model.recommend(users, 1, exclude_seen=False)
    assert top.shape == (users.size, 1)
    assert 0.0 <= model.diagnostics["holdout_positive_rate"] <= 1.0


@pytest.mark.parametrize("calibration", ["fitted", "coarse_isotonic"])
def test_lists_from_candidates_alone_are_the_dense_ranking(calibration: str) -> None:
    """`recommend` ranks each user's candidates and tops up with popular unseen
    items without a catalogue-wide row; its lists and scores are those of the dense
    score matrix ranked by (probability, raw score, item), the seen items left out,
    for known users and the unknown one, with lists longer than the candidates."""
    from recsys_cli.models.base import Recommender
    from recsys_cli.models.ranker import TwoStageRanker
    from tests.models.conftest import checkerboard
    from tests.models.test_contract import SMALL, make

    data, _ = checkerboard()
    model = make("ranker_lgbm", *SMALL["ranker_lgbm"]).fit(data)
    assert isinstance(model, TwoStageRanker)
    users = np.arange(0, data.n_users)
    if calibration == "coarse_isotonic":
        _, raw = model._score_with_tiebreak(users)
        middle = float(np.median(raw[np.isfinite(raw)]))
        model.params["calibration"], model.calibration = "isotonic", np.array([middle, middle + 1e-9, 0.2, 0.6])
    for k in (3, data.n_items // 2):
        top, scores = model.recommend(users, k)
        want_top, want_scores = Recommender.recommend(model, users, k)
        finite = np.isfinite(want_scores)
        np.testing.assert_array_equal(np.where(finite, top, 0), np.where(finite, want_top, 0))
        np.testing.assert_array_equal(scores[finite], want_scores[finite])


def test_live_events_reach_the_rankers_candidates_and_features() -> None:
    """`rank_history` with no events ranks as `recommend` does; with events the
    generators that can fold them in propose from the new history, and a visitor
    the model never met is ranked from their events alone."""
    from recsys_cli.models.ranker import TwoStageRanker
    from tests.models.conftest import checkerboard
    from tests.models.test_contract import SMALL, make

    data, _ = checkerboard()
    model = make("ranker_lgbm", *SMALL["ranker_lgbm"]).fit(data)
    assert isinstance(model, TwoStageRanker)
    user, k = 1, 5
    none, probability, _ = model.rank_history(user, np.zeros(0, np.int64), [])
    top, _ = model.recommend(np.array([user]), k)
    np.testing.assert_array_equal(none[:k], top[0])
    assert ((probability >= 0) & (probability <= 1)).all()
    # Events on two of the user's unseen candidates (events on items already seen
    # move nothing here but float noise): the list moves.
    new = none[2:4].copy()
    moved, _, _ = model.rank_history(user, new, ["view", "add_to_cart"])
    assert not np.array_equal(moved[:k], none[:k])
    visitor, visitor_probability, _ = model.rank_history(0, new, ["view", "view"])
    assert visitor.size >= k and not np.isin(visitor, [0]).any()


def test_users_asked_in_any_order_and_repeated_get_the_pairs_and_lists_of_the_sorted_batch() -> None:
    """Candidates are found for a batch's users sorted and once each, then put back
    in the order asked: asking in another order, or twice, changes nothing."""
    from recsys_cli.models.candidates import candidate_pairs
    from recsys_cli.models.ranker import TwoStageRanker
    from tests.models.conftest import checkerboard
    from tests.models.test_contract import SMALL, make

    data, _ = checkerboard()
    model = make("ranker_lgbm", *SMALL["ranker_lgbm"]).fit(data)
    assert isinstance(model, TwoStageRanker) and model.tables is not None
    asked = np.array([5, 2, 9, 2, 0, 7, 5, 1])  # unsorted, repeated, and the unknown user
    unique, inverse = np.unique(asked, return_inverse=True)
    n = model.params["n_candidates"]
    pairs, sorted_pairs = (candidate_pairs(model.generators, model.tables, u, n) for u in (asked, unique))
    assert (np.diff(pairs.rows) >= 0).all()  # grouped by position, in the order asked
    for position, row in enumerate(inverse):
        mine, theirs = pairs.rows == position, sorted_pairs.rows == row
        np.testing.assert_array_equal(pairs.items[mine], sorted_pairs.items[theirs])
        np.testing.assert_array_equal(pairs.users[mine], sorted_pairs.users[theirs])
        np.testing.assert_array_equal(pairs.numeric[mine], sorted_pairs.numeric[theirs])
        np.testing.assert_array_equal(pairs.categorical[mine], sorted_pairs.categorical[theirs])
    top, scores = model.recommend(asked, 3)
    sorted_top, sorted_scores = model.recommend(unique, 3)
    np.testing.assert_array_equal(top, sorted_top[inverse])
    np.testing.assert_array_equal(scores, sorted_scores[inverse])


def test_a_users_list_and_scores_do_not_depend_on_the_rest_of_the_batch() -> None:
    """Asked alone or among every user, a user gets the same candidates' features, the
    same list and the same probabilities: a gap to a generator's best once took the
    best from a batch's matrix product, whose last bits depend on the batch, and
    crossed a tree's threshold (0.16 alone, 0.0006 in the batch)."""
    from recsys_cli.models.candidates import candidate_pairs
    from recsys_cli.models.ranker import TwoStageRanker
    from tests.models.conftest import checkerboard
    from tests.models.test_contract import SMALL, make

    data, _ = checkerboard()
    model = make("ranker_lgbm", *SMALL["ranker_lgbm"]).fit(data)
    assert isinstance(model, TwoStageRanker) and model.tables is not None
    users = np.arange(1, data.n_users)
    n = model.params["n_candidates"]
    batch = candidate_pairs(model.generators, model.tables, users, n)
    top, scores = model.recommend(users, 3)
    for position, user in enumerate(users):
        alone = candidate_pairs(model.generators, model.tables, np.array([user]), n)
        mine = batch.rows == position
        np.testing.assert_array_equal(alone.items, batch.items[mine])
        np.testing.assert_array_equal(alone.numeric, batch.numeric[mine])
        one_top, one_scores = model.recommend(np.array([user]), 3)
        np.testing.assert_array_equal(one_top[0], top[position])
        np.testing.assert_array_equal(one_scores[0], scores[position])
