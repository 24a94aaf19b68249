"""Is one run really better than another on the same users, and does that claim
survive having compared several runs at once?

Runs scored on one window share their evaluated users, so each comparison is
paired: the per-user differences are tested, not two independent means. Two
views of each difference are given:

- the paired bootstrap (`evaluation.bootstrap`) for the size of the mean
  difference and its percentile interval;
- the Wilcoxon signed-rank test for a p-value that does not assume normal
  differences (per-user ranking metrics are skewed and full of zeros).

Comparing k runs makes k - 1 (or k(k-1)/2) tests, and some will look
significant by chance. The Wilcoxon p-values are therefore adjusted with
Holm-Bonferroni, which keeps the family-wise error rate (the chance of even one
false "better") at alpha and is never less powerful than plain Bonferroni. The
verdicts come from the adjusted p-values; the bootstrap intervals are
per comparison and describe effect sizes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import combinations
from typing import Any

import numpy as np
import polars as pl
from scipy import stats

from recsys_cli.data.schema import Col
from recsys_cli.errors import RecsysError
from recsys_cli.evaluation.bootstrap import PairedBootstrap, paired_bootstrap

# Config keys that decide which users are scored and what counts as a hit: the
# part (val/test), the fold, the split folder (dataset, splitter and target by
# name) and the splitter's and target's own settings, which an override can change
# without changing the folder's name; and the digest of the split's manifest as the
# run was trained (registry/lineage.py): a split remade in the same folder is another.
SPLIT_DIGEST = "split_manifest_sha256"
WINDOW_KEYS = ("part", "fold", "split_dir", SPLIT_DIGEST, "split", "target", "data.name")

BETTER, WORSE, SAME, MIXED = "better", "worse", "no significant difference", "mixed"


class ComparisonError(RecsysError):
    """Runs cannot be compared as asked (different windows, no shared users...)."""


@dataclass(frozen=True)
class Aligned:
    """One metric of several runs on the users they all scored, one column per run."""

    labels: list[str]
    users: list[int]  # users each run scored, before alignment
    values: np.ndarray  # (shared users, runs)

    @property
    def shared(self) -> int:
        return int(self.values.shape[0])


@dataclass(frozen=True)
class Comparison:
    """`candidate` against `reference` on their shared users (difference = candidate - reference)."""

    candidate: str
    reference: str
    bootstrap: PairedBootstrap
    wilcoxon_statistic: float
    wilcoxon_p: float
    # +1 when the signed ranks favour the candidate, -1 the reference, 0 neither.
    rank_direction: int
    holm_p: float
    verdict: str

    @property
    def significant(self) -> bool:
        return self.verdict in (BETTER, WORSE, MIXED)

    @property
    def interval_side(self) -> str:
        """Where the bootstrap interval lies: the interval-based reading of the test."""
        if self.bootstrap.low > 0:
            return "above 0"
        if self.bootstrap.high < 0:
            return "below 0"
        return "includes 0"


def window_of(config: Mapping[str, Any]) -> dict[str, Any]:
    """The WINDOW_KEYS of a run's (plain, nested) config; absent keys read as None."""
    return {key: _select(config, key) for key in WINDOW_KEYS}


def _select(config: Mapping[str, Any], dotted: str) -> Any:
    node: Any = config
    for part in dotted.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return None
        node = node[part]
    return node


def check_same_window(labels: Sequence[str], windows: Sequence[Mapping[str, Any]]) -> None:
    """Refuse runs scored on different windows: their users and truths differ, so a
    paired difference would mix the models with the data."""
    for key in WINDOW_KEYS:
        values = [w.get(key) for w in windows]
        odd = next((i for i, v in enumerate(values) if v != values[0]), None)
        if odd is not None:
            raise ComparisonError(
                f"runs were scored on different windows: {key} is {values[0]!r} in {labels[0]} "
                f"but {values[odd]!r} in {labels[odd]}; compare runs of one part, fold and split"
            )


def align(labels: Sequence[str], frames: Sequence[pl.DataFrame], metric: str) -> Aligned:
    """Inner-join the runs' per-user `metric` on user_id: only users every run scored
    are compared, so each comparison is paired on the same people."""
    if len(labels) != len(frames) or len(frames) < 2:
        raise ComparisonError(f"need at least two runs to compare, got {len(frames)}")
    columns = [f"run{i}" for i in range(len(frames))]
    parts = [
        _metric_column(label, frame, metric, column)
        for label, frame, column in zip(labels, frames, columns, strict=True)
    ]
    joined = parts[0]
    for part in parts[1:]:
        joined = joined.join(part, on=Col.USER, how="inner")
    if joined.height == 0:
        raise ComparisonError(f"the runs share no user ({', '.join(labels)}); were they scored on one window?")
    values = joined.sort(Col.USER).select(columns).to_numpy().astype(np.float64)
    return Aligned(list(labels), [part.height for part in parts], values)


def _metric_column(label: str, frame: pl.DataFrame, metric: str, name: str) -> pl.DataFrame:
    """user_id (as text, so runs that stored ids differently still pair) and the metric."""
    missing = [c for c in (Col.USER, metric) if c not in frame.columns]
    if missing:
        found = ", ".join(c for c in frame.columns if c != Col.USER)
        raise ComparisonError(f"{label}: per-user metrics have no {' or '.join(missing)} column (found: {found})")
    out = frame.select(pl.col(Col.USER).cast(pl.String), pl.col(metric).cast(pl.Float64).alias(name))
    if out[Col.USER].is_duplicated().any():
        raise ComparisonError(f"{label}: per-user metrics list some user more than once")
    if out[name].is_null().any() or out[name].is_nan().any():
        raise ComparisonError(f"{label}: {metric} is missing (null or NaN) for some users")
    return out


def pairs(n_runs: int, all_pairs: bool = False) -> list[tuple[int, int]]:
    """(candidate, reference) indices: every run against the first (the control), or
    every later run against every earlier one."""
    if all_pairs:
        return [(j, i) for i, j in combinations(range(n_runs), 2)]
    return [(j, 0) for j in range(1, n_runs)]


def wilcoxon(a: np.ndarray, b: np.ndarray) -> tuple[float, float, int]:
    """Two-sided Wilcoxon signed-rank test of a - b (zero differences dropped), and the
    side the signed ranks lean to. Identical runs (all differences zero) get p = 1
    rather than scipy's NaN: there is nothing to detect."""
    d = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    nonzero = d[d != 0]
    if nonzero.size == 0:
        return 0.0, 1.0, 0
    result = stats.wilcoxon(d, zero_method="wilcox")
    ranks = stats.rankdata(np.abs(nonzero))
    lean = ranks[nonzero > 0].sum() - ranks.sum() / 2  # W+ minus its expectation under no difference
    return float(result.statistic), float(result.pvalue), int(np.sign(lean))


def holm(p_values: Sequence[float] | np.ndarray) -> np.ndarray:
    """Holm-Bonferroni adjusted p-values, in the input order.

    Sorted ascending, the i-th smallest (from 0) is multiplied by m - i; a running
    maximum keeps the adjusted values in the same order as the raw ones, and they
    are capped at 1. A hypothesis is rejected at family-wise level alpha when its
    adjusted p-value is <= alpha.

    >>> holm([0.01, 0.04, 0.03]).round(3).tolist()
    [0.03, 0.06, 0.06]
    """
    p = np.asarray(p_values, dtype=np.float64)
    order = np.argsort(p, kind="stable")
    scaled = (p.size - np.arange(p.size)) * p[order]
    adjusted = np.empty_like(p)
    adjusted[order] = np.minimum(np.maximum.accumulate(scaled), 1.0)
    return adjusted


def verdict(difference: float, rank_direction: int, holm_p: float, alpha: float) -> str:
    """better / worse when the Holm-adjusted test rejects and the mean moved the same
    way as the signed ranks; mixed when they moved in opposite directions (most
    users gained but the mean fell, or the reverse), which a single word would hide."""
    if not holm_p <= alpha or difference == 0 or rank_direction == 0:
        return SAME
    if np.sign(difference) != rank_direction:
        return MIXED
    return BETTER if difference > 0 else WORSE


def compare(
    aligned: Aligned, all_pairs: bool = False, n_resamples: int = 10_000, seed: int = 0, alpha: float = 0.05
) -> list[Comparison]:
    """Every comparison asked for, with Holm's correction over all of them together.
    The bootstrap intervals are at confidence 1 - alpha; every pair reuses the same
    seed, so the resampled users are the same in every comparison."""
    if not 0 < alpha < 1:
        raise ComparisonError(f"alpha must be between 0 and 1, got {alpha}")
    chosen = pairs(len(aligned.labels), all_pairs)
    boots, tests = [], []
    for cand, ref in chosen:
        a, b = aligned.values[:, cand], aligned.values[:, ref]
        boots.append(paired_bootstrap(a, b, n_resamples=n_resamples, seed=seed, confidence=1 - alpha))
        tests.append(wilcoxon(a, b))
    adjusted = holm([p for _, p, _ in tests])
    return [
        Comparison(
            candidate=aligned.labels[cand],
            reference=aligned.labels[ref],
            bootstrap=boot,
            wilcoxon_statistic=stat,
            wilcoxon_p=p,
            rank_direction=lean,
            holm_p=float(adj),
            verdict=verdict(boot.difference, lean, float(adj), alpha),
        )
        for (cand, ref), boot, (stat, p, lean), adj in zip(chosen, boots, tests, adjusted, strict=True)
    ]


def summary(comparisons: Sequence[Comparison], metric: str, alpha: float) -> str:
    """One sentence: which differences hold after Holm's correction, and which do not."""
    head = (
        f"After Holm correction over {len(comparisons)} comparison{'s' if len(comparisons) != 1 else ''} "
        f"(Wilcoxon signed-rank on per-user {metric}, family-wise alpha {alpha:g})"
    )
    found = [c for c in comparisons if c.significant]
    if not found:
        return f"{head}, no difference is significant."
    claims = "; ".join(_claim(c) for c in found)
    rest = len(comparisons) - len(found)
    tail = {0: "", 1: "; the other comparison shows no significant difference"}.get(
        rest, f"; the other {rest} show no significant difference"
    )
    return f"{head}: {claims}{tail}."


def _claim(c: Comparison) -> str:
    change = f"{c.bootstrap.difference:+.4g}, Holm p={c.holm_p:.2g}"
    if c.verdict == MIXED:
        return f"{c.candidate} differs from {c.reference} but the mean and most users moved apart ({change})"
    return f"{c.candidate} is {c.verdict} than {c.reference} ({change})"
