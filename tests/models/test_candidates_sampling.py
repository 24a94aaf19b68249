"""Negative sampling of the ranker's labelled candidate lists, and the weights that
let the sampled lists stand for the whole ones.

A list (a run of one group) keeps every positive, the `hard_negatives` negatives
the generators ranked highest (none by default) and the rest of `negatives` drawn
from the others, each of those weighted by how many of the rest it stands for. A training
list without a positive teaches a ranker nothing and is dropped; a held-out one
is kept, since calibration needs the lists that end empty too.
"""

from __future__ import annotations

import numpy as np

from recsys_cli.evaluation.calibration import expected_calibration_error
from recsys_cli.models.calibration import fit_calibration, weighted_ece
from recsys_cli.models.candidates import sample_negatives


def lists() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Group 10: 10 candidates, positives at rows 3 and 7. Group 11: 6 candidates, no
    positive. Rank = position (row 0 of each list the generators' best)."""
    group = np.r_[np.full(10, 10), np.full(6, 11)]
    labels = np.zeros(16, np.float32)
    labels[[3, 7]] = 1
    rank = np.r_[np.arange(10), np.arange(6)].astype(np.float32)
    return group, labels, rank


def test_keeps_positives_the_hardest_negatives_and_a_weighted_draw() -> None:
    group, labels, rank = lists()
    keep, weight = sample_negatives(
        group, labels, rank, 4, np.random.default_rng(0), np.ones(16, bool), hard_negatives=2
    )
    first = np.flatnonzero(keep[:10])
    assert {3, 7} <= set(first)
    assert {0, 1} <= set(first)  # the two best-ranked negatives
    assert first.size == 2 + 4
    drawn = sorted(set(first) - {0, 1, 3, 7})
    # 6 negatives remain after the hard ones; each of the 2 drawn stands for 3.
    np.testing.assert_array_equal(weight[drawn], [3.0, 3.0])
    np.testing.assert_array_equal(weight[[0, 1, 3, 7]], [1.0, 1.0, 1.0, 1.0])
    assert not keep[10:].any()  # a training list without a positive is dropped


def test_held_out_lists_without_a_positive_stay_for_calibration() -> None:
    group, labels, rank = lists()
    keep, weight = sample_negatives(
        group, labels, rank, 4, np.random.default_rng(0), np.zeros(16, bool), hard_negatives=2
    )
    assert keep[10:].sum() == 4
    # The kept rows stand for every candidate of the lists.
    assert weight[keep].sum() == group.size


def test_short_lists_are_kept_whole_and_the_draw_repeats_for_a_seed() -> None:
    group, labels, rank = lists()
    keep, weight = sample_negatives(group, labels, rank, 100, np.random.default_rng(0), np.ones(16, bool))
    assert keep[:10].all() and (weight[:10] == 1).all()
    a = sample_negatives(group, labels, rank, 3, np.random.default_rng(7), np.zeros(16, bool))
    b = sample_negatives(group, labels, rank, 3, np.random.default_rng(7), np.zeros(16, bool))
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])


def test_weighted_calibration_equals_the_repeated_examples() -> None:
    """An example of weight 3 counts as three copies of it, for the fit and the error."""
    rng = np.random.default_rng(1)
    scores = rng.normal(size=200)
    labels = (rng.uniform(size=200) < 1 / (1 + np.exp(-2 * scores))).astype(float)
    weights = rng.integers(1, 4, 200).astype(float)
    repeated = np.repeat(np.arange(200), weights.astype(int))
    for method in ("platt", "isotonic"):
        np.testing.assert_allclose(
            fit_calibration(method, scores, labels, weights),
            fit_calibration(method, scores[repeated], labels[repeated]),
            rtol=1e-5,
            atol=1e-7,
        )
    probs = rng.uniform(size=200)
    assert np.isclose(
        weighted_ece(probs, labels, weights), expected_calibration_error(probs[repeated], labels[repeated])
    )
