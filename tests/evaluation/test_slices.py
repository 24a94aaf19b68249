"""Error slices on hand-made per-user values whose answer is known: which user
segments and item groups a model loses, wins or cannot be judged on against a
baseline, and how each positive is attributed to its item group."""

from __future__ import annotations

import numpy as np
import pytest

from recsys_cli.evaluation.bootstrap import paired_bootstrap
from recsys_cli.evaluation.segments import Grouping, activity, cold_start, item_attribute
from recsys_cli.evaluation.slices import (
    ITEMS,
    LOSES,
    NO_EVIDENCE,
    TOO_FEW,
    USERS,
    WINS,
    ErrorSlices,
    Positives,
    Slice,
    error_slices,
)

# Eight users: four cold-start ones the model serves worse (0 vs 0.5), two light
# users it serves better (1 vs 0), two heavy users where each model wins one.
MODEL = np.array([0.0, 0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 0.0])
BASELINE = np.array([0.5, 0.5, 0.5, 0.5, 0.0, 0.0, 0.0, 1.0])
COLD = cold_start(np.array([1, 1, 1, 1, 0, 0, 0, 0]))
ACTIVITY = activity(np.array([0, 0, 0, 0, 2, 3, 7, 9]), [5])  # 0 | 1-4 | 5+


def by_group(result: ErrorSlices) -> dict[tuple[str, str], Slice]:
    return {(s.by, s.group): s for s in result.slices}


def test_user_slices_lose_win_or_show_no_evidence() -> None:
    result = error_slices(MODEL, BASELINE, [COLD, ACTIVITY], min_users=1, resamples=500)
    slices = by_group(result)
    cold, light, heavy = slices["cold_start", "cold-start"], slices["activity", "1-4"], slices["activity", "5+"]
    assert (cold.kind, cold.users, cold.model, cold.baseline, cold.difference) == (USERS, 4, 0.0, 0.5, -0.5)
    assert cold.low == cold.high == pytest.approx(-0.5) and cold.verdict == LOSES
    assert slices["activity", "0"].verdict == LOSES  # the cold-start users again, by activity
    assert (light.difference, light.verdict) == (1.0, WINS)
    assert heavy.difference == 0.0 and heavy.low < 0 < heavy.high and heavy.verdict == NO_EVIDENCE
    assert slices["cold_start", "warm"].difference == pytest.approx(0.5)
    assert cold.positives is None


def test_biggest_losses_come_first() -> None:
    result = error_slices(MODEL, BASELINE, [COLD, ACTIVITY], min_users=1, resamples=200)
    differences = [s.difference for s in result.slices]
    assert differences == sorted(differences)
    assert [s.verdict for s in result.slices[:2]] == [LOSES, LOSES]
    assert result.slices[-1].verdict == WINS


def test_small_slices_are_listed_last_and_never_judged() -> None:
    result = error_slices(MODEL, BASELINE, [COLD, ACTIVITY], min_users=3, resamples=200)
    slices = by_group(result)
    assert slices["activity", "1-4"].verdict == TOO_FEW  # two users: a tight interval that means nothing
    assert slices["cold_start", "cold-start"].verdict == LOSES
    assert [s.verdict == TOO_FEW for s in result.slices] == [False] * 3 + [True] * 2


def test_a_draw_of_only_ties_is_zero_not_a_loss() -> None:
    """The draws holding only the tied users give a difference of 0, which the
    float32 bootstrap returns as about -2e-9: the interval must end at 0, not below."""
    model, baseline = np.array([0.1238, 0.0, 0.0]), np.array([0.2520, 0.0, 0.0])
    (one,) = error_slices(model, baseline, [Grouping("all", ("all",), np.zeros(3, np.int64))], min_users=1).slices
    assert one.high == 0.0 and one.verdict == NO_EVIDENCE


def test_groups_nobody_is_in_are_left_out() -> None:
    region = Grouping("region", ("north", "south", "east"), np.array([0, 0, 0, 0, 1, 1, 1, 1]))
    groups = [s.group for s in error_slices(MODEL, BASELINE, [region], resamples=50).slices]
    assert sorted(groups) == ["north", "south"]


def test_overall_is_the_paired_bootstrap_and_slices_share_its_draws() -> None:
    everyone = Grouping("all", ("everyone",), np.zeros(8, dtype=np.int64))
    result = error_slices(MODEL, BASELINE, [everyone], resamples=300, seed=7)
    assert result.overall == paired_bootstrap(MODEL, BASELINE, 300, 7)
    (only,) = result.slices
    assert only.difference == pytest.approx(result.overall.difference)
    assert (only.low, only.high) == pytest.approx((result.overall.low, result.overall.high), abs=1e-6)


# Items 1, 2 are books and 3, 4 toys; item 0 stands for products the model never saw.
CATEGORY = item_attribute("category", ["books", "books", "toys", "toys"])
POSITIVES = Positives(
    user=np.array([0, 0, 1, 1, 2, 3, 3]),
    item=np.array([1, 3, 2, 4, 0, 1, 2]),
    found_model=np.array([True, False, True, False, False, True, False]),
    found_baseline=np.array([True, True, False, True, False, True, True]),
)


def test_item_slices_compare_the_recall_of_each_groups_positives() -> None:
    a, b = np.zeros(4), np.zeros(4)
    slices = by_group(error_slices(a, b, [], POSITIVES, [CATEGORY], min_users=1, resamples=300))
    books, toys, unseen = slices["category", "books"], slices["category", "toys"], slices["category", "not in training"]
    # Books: users 0, 1, 3 hold 4 positives; the model finds 1/1, 1/1, 1/2, the baseline 1/1, 0/1, 2/2.
    assert (books.kind, books.users, books.positives) == (ITEMS, 3, 4)
    assert books.model == pytest.approx(2.5 / 3) and books.baseline == pytest.approx(2 / 3)
    assert books.verdict == NO_EVIDENCE
    # Toys: users 0 and 1 each hold one the baseline finds and the model misses.
    assert (toys.users, toys.positives, toys.model, toys.baseline) == (2, 2, 0.0, 1.0)
    assert toys.low == toys.high == pytest.approx(-1.0) and toys.verdict == LOSES
    # A product neither model knew: no list can find it, so nothing is lost there.
    assert (unseen.users, unseen.difference, unseen.verdict) == (1, 0.0, NO_EVIDENCE)


def test_user_and_item_slices_come_together() -> None:
    first_four = Grouping("cold_start", COLD.labels, COLD.codes[:4])
    result = error_slices(MODEL[:4], BASELINE[:4], [first_four], POSITIVES, [CATEGORY], min_users=1, resamples=100)
    assert {s.kind for s in result.slices} == {USERS, ITEMS}
    assert result.slices[0].difference == -1.0  # the toys


def test_inputs_that_do_not_line_up_are_refused() -> None:
    with pytest.raises(ValueError, match="3 rows for 8 users"):
        error_slices(MODEL, BASELINE, [cold_start(np.array([1, 0, 0]))])
    outside = Positives(np.array([9]), np.array([1]), np.array([True]), np.array([False]))
    with pytest.raises(ValueError, match="user rows"):
        error_slices(MODEL, BASELINE, [], outside, [CATEGORY])
    with pytest.raises(ValueError, match="one length"):
        error_slices(
            MODEL, BASELINE, [], Positives(np.array([0]), np.array([1, 2]), np.array([True]), np.array([True]))
        )
