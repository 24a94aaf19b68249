"""The whole evaluation on a planted case whose answers are known: half the users
get their relevant item first, the other half only best-sellers."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from recsys_cli.evaluation import segments
from recsys_cli.evaluation.suite import Inputs, Settings, evaluate

N_USERS, N_ITEMS, LENGTH = 200, 60, 10


def planted_inputs(probabilities: bool = True) -> Inputs:
    """Users 0..99 ("F") get their one relevant item (20..59) at rank 1, then
    best-sellers 1..9; users 100..199 ("M") get best-sellers 1..10 and miss.
    Items 1..10 drew 100 training users each, the rest 1; items 50..59 are new."""
    users = np.arange(N_USERS)
    relevant = 20 + users % 40
    liked = users < 100
    recs = np.tile(np.arange(1, LENGTH + 1), (N_USERS, 1))
    recs[liked] = np.column_stack([relevant[liked], np.tile(np.arange(1, LENGTH), (100, 1))])
    truth = sp.csr_matrix((np.ones(N_USERS), (users, relevant)), shape=(N_USERS, N_ITEMS))
    popularity = np.where(np.arange(N_ITEMS) <= 10, 100.0, 1.0)
    popularity[0] = 0.0
    probs = np.full((N_USERS, LENGTH), 0.05)
    probs[liked, 0] = 0.9
    return Inputs(
        recs=recs,
        truth=truth,
        popularity=popularity,
        n_train_users=400,
        user_groups=[
            segments.cold_start(users >= 190),
            segments.from_values("gender", np.where(liked, "F", "M").tolist()),
        ],
        item_groups=[segments.item_attribute("category", [f"c{i % 3}" for i in range(1, N_ITEMS)])],
        categories=np.arange(N_ITEMS) % 3,
        new_items=np.arange(N_ITEMS) >= 50,
        probabilities=probs if probabilities else None,
        scored=users < 190 if probabilities else None,
        calibration_note="" if probabilities else "PlantedModel gives ranking scores, not engagement probabilities",
    )


SETTINGS = Settings(ks=[1, 5, 10], primary="ndcg@5", resamples=300)


def test_headline_metrics_and_intervals() -> None:
    result = evaluate(planted_inputs(), SETTINGS).summary
    head = result["headline"]
    for name in ("ndcg", "recall", "hitrate", "mrr", "map"):
        assert head[f"{name}@5"]["value"] == pytest.approx(0.5), name
    assert head["precision@5"]["value"] == pytest.approx(0.5 / 5)
    for cell in head.values():
        assert cell["low"] <= cell["value"] <= cell["high"]
    # A mean of 200 coin flips: the interval is about +-1.96 * 0.5 / sqrt(200) = +-0.07.
    assert head["hitrate@5"]["high"] - head["hitrate@5"]["low"] == pytest.approx(0.14, abs=0.03)
    assert result["users"] == {"evaluated": 200, "cold_start": 10, "with_relevant_items": 200}


def test_every_interval_is_at_the_configured_confidence() -> None:
    wide = evaluate(planted_inputs(), SETTINGS).summary
    narrow = evaluate(planted_inputs(), Settings(ks=[1, 5, 10], primary="ndcg@5", resamples=300, confidence=0.5))
    assert narrow.summary["bootstrap"]["confidence"] == 0.5
    for name, cell in narrow.summary["headline"].items():
        assert wide["headline"][name]["low"] <= cell["low"] <= cell["high"] <= wide["headline"][name]["high"], name
    # Same resamples, inner quantiles: the 50% interval of a coin-flip mean is about a third as wide.
    width = narrow.summary["headline"]["hitrate@5"]["high"] - narrow.summary["headline"]["hitrate@5"]["low"]
    assert width == pytest.approx(0.14 * 0.674 / 1.96, abs=0.02)
    assert narrow.summary["calibration"]["brier_interval"]["high"] < wide["calibration"]["brier_interval"]["high"]


def test_beyond_accuracy_on_the_planted_lists() -> None:
    result = evaluate(planted_inputs(), SETTINGS).summary
    beyond, head = result["beyond"], result["headline"]
    # Top-1: best-seller 1 for "M", the 40 relevant items 20..59 for "F"; of 59 recommendable items.
    assert beyond["coverage@1"] == pytest.approx(41 / 59)
    assert beyond["coverage@10"] == pytest.approx(50 / 59)
    # New products (50..59) top the lists of "F" users 30..39 and 70..79: 20 of 200.
    assert head["new_items@1"]["value"] == pytest.approx(20 / 200)
    # Popularity lift: best-sellers (100 of 400 users) dominate the lists.
    assert head["popularity@10"]["value"] > beyond["training_popularity"] * 0.9
    assert head["diversity@5"]["value"] > 0


def test_segments_fairness_and_flags() -> None:
    result = evaluate(planted_inputs(), SETTINGS).summary
    gender = {r["group"]: r for r in result["segments"]["users"]["gender"]}
    assert gender["F"]["ndcg@5"] == pytest.approx(1.0) and gender["M"]["ndcg@5"] == 0.0
    assert gender["F"]["ndcg@5_low"] == gender["F"]["ndcg@5_high"] == pytest.approx(1.0)
    (gap,) = [g for g in result["fairness"]["user_gaps"] if g["attribute"] == "gender"]
    assert gap["best"] == "F" and gap["gap"] == pytest.approx(1.0) and gap["relative_gap"] == pytest.approx(2.0)
    assert gap["flagged"]
    assert any(line.startswith("ndcg@5 gap across gender: F 1.0000 vs M 0.0000") for line in result["flags"])
    tiers = {r["group"]: r for r in result["segments"]["items"]["popularity_tier"]}
    assert tiers["head"]["exposure@5"] > tiers["head"]["interaction_share"]
    assert set(result["segments"]["items"]) == {"popularity_tier", "category"}


def test_calibration_when_the_model_gives_probabilities() -> None:
    cal = evaluate(planted_inputs(), SETTINGS).summary["calibration"]
    assert cal["available"] and cal["users"] == 190 and cal["pairs"] == 1900
    # Scored "F" users hit their 0.9 slot every time: observed 1 vs 0.9 there, 0 vs 0.05 elsewhere.
    assert cal["observed"] == pytest.approx(100 / 1900)
    assert cal["brier_interval"]["low"] <= cal["brier"] <= cal["brier_interval"]["high"]
    without = evaluate(planted_inputs(probabilities=False), SETTINGS)
    assert without.summary["calibration"] == {
        "available": False,
        "note": "PlantedModel gives ranking scores, not engagement probabilities",
    }
    assert "brier" not in without.per_user


def test_per_user_arrays_average_to_the_headline() -> None:
    result = evaluate(planted_inputs(), SETTINGS)
    for name, cell in result.summary["headline"].items():
        assert result.per_user[name].mean() == pytest.approx(cell["value"]), name


def test_settings_are_checked() -> None:
    with pytest.raises(ValueError, match="eval.primary"):
        Settings(ks=[5, 10], primary="ndcg@20")
    with pytest.raises(ValueError, match="eval.primary"):
        Settings(ks=[5, 10], primary="auc@10")
    with pytest.raises(ValueError, match="eval.ks"):
        Settings(ks=[10, 10], primary="ndcg@10")
    with pytest.raises(ValueError, match="go beyond"):
        evaluate(planted_inputs(), Settings(ks=[5, 20], primary="ndcg@5", resamples=10))


def test_new_products_in_the_truth_lower_recall_and_leave_the_catalogue_alone() -> None:
    """User 0 also engaged with three products the model never saw (columns past
    the catalogue): their recall@5 becomes 1/4 and NDCG@5 1 / IDCG(4); coverage and
    the catalogue size still count the model's items only."""
    inputs = planted_inputs()
    extra = sp.csr_matrix((np.ones(3), ([0, 0, 0], [0, 1, 2])), shape=(N_USERS, 3))
    inputs.truth = sp.hstack([inputs.truth, extra]).tocsr()
    result = evaluate(inputs, SETTINGS)
    assert result.per_user["recall@5"][0] == pytest.approx(1 / 4)
    ideal = sum(1 / np.log2(r + 1) for r in range(1, 5))
    assert result.per_user["ndcg@5"][0] == pytest.approx(1 / ideal)
    assert result.summary["items"]["catalogue"] == N_ITEMS - 1
    assert result.summary["beyond"]["coverage@1"] == pytest.approx(41 / 59)
