"""Paired significance between runs: Holm by hand, Wilcoxon against scipy, user
alignment and window checks, and the verdicts on planted and null differences."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from scipy import stats

from recsys_cli.evaluation import significance as sig


def frame(users: list[str], values: list[float] | np.ndarray, metric: str = "ndcg@10") -> pl.DataFrame:
    return pl.DataFrame({"user_id": users, metric: np.asarray(values, dtype=np.float64)})


def simulated(n: int, effect: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Two runs' per-user scores: a shared user difficulty, noise, and an effect."""
    rng = np.random.default_rng(seed)
    difficulty = rng.beta(0.6, 2.0, size=n)
    control = np.clip(difficulty + rng.normal(0, 0.05, size=n), 0, 1)
    candidate = np.clip(difficulty + effect + rng.normal(0, 0.05, size=n), 0, 1)
    return control, candidate


def aligned(*columns: np.ndarray) -> sig.Aligned:
    n = columns[0].size
    return sig.Aligned([f"run{i}" for i in range(len(columns))], [n] * len(columns), np.column_stack(columns))


# Holm-Bonferroni


def test_holm_matches_a_hand_computed_example() -> None:
    # Sorted: 0.005, 0.01, 0.03, 0.04 -> times 4, 3, 2, 1 = 0.02, 0.03, 0.06, 0.04
    # -> running maximum 0.02, 0.03, 0.06, 0.06, put back in input order.
    adjusted = sig.holm([0.01, 0.04, 0.03, 0.005])
    np.testing.assert_allclose(adjusted, [0.03, 0.06, 0.06, 0.02])
    # At alpha 0.05 Holm rejects the two smallest; Bonferroni (p * 4) would reject the same two
    # here, and stops being as powerful as Holm as soon as the third is 0.024.
    np.testing.assert_allclose(sig.holm([0.01, 0.024, 0.005]), [0.02, 0.024, 0.015])


def test_holm_is_capped_at_one_and_keeps_a_single_p_value() -> None:
    np.testing.assert_allclose(sig.holm([0.5, 0.6, 0.9]), [1.0, 1.0, 1.0])
    np.testing.assert_allclose(sig.holm([0.03]), [0.03])


# Wilcoxon signed-rank


def test_wilcoxon_agrees_with_scipy_and_reports_the_side() -> None:
    control, candidate = simulated(200, 0.02, seed=3)
    candidate[:30] = control[:30]  # zero differences, dropped by zero_method="wilcox"
    statistic, p, side = sig.wilcoxon(candidate, control)
    expected = stats.wilcoxon(candidate - control, zero_method="wilcox")
    assert statistic == pytest.approx(expected.statistic) and p == pytest.approx(expected.pvalue)
    assert side == 1 and sig.wilcoxon(control, candidate)[2] == -1


def test_identical_runs_give_p_one_not_nan() -> None:
    values = np.linspace(0, 1, 50)
    assert sig.wilcoxon(values, values.copy()) == (0.0, 1.0, 0)


# Alignment and windows


def test_align_keeps_only_the_users_every_run_scored() -> None:
    a = frame(["u1", "u2", "u3", "u4"], [0.1, 0.2, 0.3, 0.4])
    b = frame(["u3", "u2", "u5"], [0.7, 0.6, 0.9])
    c = pl.DataFrame({"user_id": ["u2", "u3", "u4"], "ndcg@10": [1.0, 1.0, 1.0]})
    out = sig.align(["A", "B", "C"], [a, b, c], "ndcg@10")
    assert out.users == [4, 3, 3] and out.shared == 2
    np.testing.assert_allclose(out.values, [[0.2, 0.6, 1.0], [0.3, 0.7, 1.0]])  # u2 then u3, paired by id


def test_align_pairs_numeric_and_text_ids() -> None:
    a = pl.DataFrame({"user_id": [1, 2], "ndcg@10": [0.1, 0.2]})
    b = frame(["2", "1"], [0.5, 0.4])
    np.testing.assert_allclose(sig.align(["A", "B"], [a, b], "ndcg@10").values, [[0.1, 0.4], [0.2, 0.5]])


def test_align_refuses_no_shared_users_missing_metrics_and_duplicates() -> None:
    with pytest.raises(sig.ComparisonError, match="share no user"):
        sig.align(["A", "B"], [frame(["u1"], [0.1]), frame(["u2"], [0.1])], "ndcg@10")
    with pytest.raises(sig.ComparisonError, match="B: .*no recall@5 column"):
        sig.align(["A", "B"], [frame(["u1"], [0.1], "recall@5"), frame(["u1"], [0.1])], "recall@5")
    with pytest.raises(sig.ComparisonError, match="more than once"):
        sig.align(["A", "B"], [frame(["u1", "u1"], [0.1, 0.2]), frame(["u1"], [0.1])], "ndcg@10")
    with pytest.raises(sig.ComparisonError, match="null or NaN"):
        sig.align(["A", "B"], [frame(["u1"], [np.nan]), frame(["u1"], [0.1])], "ndcg@10")


def config(part: str = "val", fold: str = "fold-0", val_fraction: float = 0.1) -> dict[str, object]:
    return {
        "part": part,
        "fold": fold,
        "split_dir": "data/splits/synth/global_temporal-engagement",
        "split": {"name": "global_temporal", "val_fraction": val_fraction},
        "target": {"name": "engagement"},
        "data": {"name": "synth", "description": "not part of the window"},
        "model": {"_target_": "anything"},
    }


def test_window_keeps_the_keys_that_decide_the_scored_users() -> None:
    window = sig.window_of(config())
    assert set(window) == set(sig.WINDOW_KEYS) and window["data.name"] == "synth"
    assert sig.window_of({"part": "val"})["fold"] is None


@pytest.mark.parametrize(
    ("other", "key"),
    [(config(part="test"), "part"), (config(fold="fold-1"), "fold"), (config(val_fraction=0.2), "split")],
)
def test_runs_on_different_windows_are_refused(other: dict[str, object], key: str) -> None:
    windows = [sig.window_of(config()), sig.window_of(config()), sig.window_of(other)]
    with pytest.raises(sig.ComparisonError, match=f"different windows: {key} .* in A but .* in C"):
        sig.check_same_window(["A", "B", "C"], windows)


def test_runs_of_one_window_with_different_models_pass() -> None:
    other = config() | {"model": {"_target_": "else"}}
    sig.check_same_window(["A", "B"], [sig.window_of(config()), sig.window_of(other)])


# Verdicts


def test_a_planted_improvement_is_significant_after_correction() -> None:
    control, candidate = simulated(400, 0.03, seed=0)
    (c,) = sig.compare(aligned(control, candidate), n_resamples=2000)
    assert c.candidate == "run1" and c.reference == "run0"
    assert c.verdict == sig.BETTER and c.holm_p < 1e-6 and c.interval_side == "above 0"
    assert c.bootstrap.difference == pytest.approx(candidate.mean() - control.mean())
    (worse,) = sig.compare(aligned(candidate, control), n_resamples=2000)
    assert worse.verdict == sig.WORSE and worse.interval_side == "below 0"


def test_a_a_comparisons_are_rarely_significant() -> None:
    # Two runs of one process differ by noise only: at alpha 0.05 about 5% of such
    # comparisons may be called significant, and the verdict must not do worse.
    # 200 draws: the binomial standard error is 1.5 points.
    verdicts, outside = [], 0
    for seed in range(200):
        control, again = simulated(150, 0.0, seed=100 + seed)
        (c,) = sig.compare(aligned(control, again), n_resamples=200, seed=seed)
        verdicts.append(c.verdict)
        outside += c.interval_side != "includes 0"
    assert verdicts.count(sig.SAME) / len(verdicts) >= 0.9
    assert outside / len(verdicts) <= 0.12  # per-comparison intervals, percentile bootstrap at n=150


def test_identical_runs_are_not_different() -> None:
    control, _ = simulated(400, 0.0, seed=1)
    (same,) = sig.compare(aligned(control, control.copy()), n_resamples=200)
    assert same.verdict == sig.SAME and same.holm_p == 1.0 and same.bootstrap.low == same.bootstrap.high == 0


def test_holm_covers_every_comparison_made() -> None:
    control, better = simulated(300, 0.02, seed=2)
    _, null = simulated(300, 0.0, seed=2)
    data = aligned(control, better, null)
    vs_control = sig.compare(data, n_resamples=500)
    every_pair = sig.compare(data, all_pairs=True, n_resamples=500)
    assert [(c.candidate, c.reference) for c in vs_control] == [("run1", "run0"), ("run2", "run0")]
    assert [(c.candidate, c.reference) for c in every_pair] == [("run1", "run0"), ("run2", "run0"), ("run2", "run1")]
    for found in (vs_control, every_pair):
        np.testing.assert_allclose([c.holm_p for c in found], sig.holm([c.wilcoxon_p for c in found]))
    assert every_pair[0].holm_p >= vs_control[0].holm_p  # more comparisons, stricter correction


def test_mean_and_signed_ranks_moving_apart_is_called_mixed() -> None:
    # 90 users gain a little, 10 lose a lot: the typical user is better, the mean is worse.
    control = np.full(100, 0.5)
    candidate = np.concatenate([np.full(90, 0.52) + np.arange(90) * 1e-4, np.full(10, 0.2)])
    (c,) = sig.compare(aligned(control, candidate), n_resamples=500)
    assert c.bootstrap.difference < 0 and c.rank_direction == 1 and c.verdict == sig.MIXED


def test_verdict_rules() -> None:
    assert sig.verdict(0.1, 1, 0.01, 0.05) == sig.BETTER
    assert sig.verdict(-0.1, -1, 0.05, 0.05) == sig.WORSE  # adjusted p equal to alpha rejects
    assert sig.verdict(0.1, 1, 0.06, 0.05) == sig.SAME
    assert sig.verdict(0.1, 1, float("nan"), 0.05) == sig.SAME


def test_summary_names_what_survives_the_correction() -> None:
    control, better = simulated(300, 0.03, seed=4)
    _, null = simulated(300, 0.0, seed=4)
    found = sig.compare(aligned(control, better, null), n_resamples=500)
    text = sig.summary(found, "ndcg@10", 0.05)
    assert text.startswith("After Holm correction over 2 comparisons")
    assert "run1 is better than run0" in text and "the other comparison shows no significant difference" in text
    assert sig.summary(found[1:], "ndcg@10", 0.05).endswith("no difference is significant.")


def test_bad_alpha_is_refused() -> None:
    control, better = simulated(20, 0.0, seed=5)
    with pytest.raises(sig.ComparisonError, match="alpha"):
        sig.compare(aligned(control, better), alpha=1.0)
