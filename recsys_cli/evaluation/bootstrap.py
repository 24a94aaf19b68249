"""Paired bootstrap over users: is model A better than model B on the same users?

Two models scored on one window share their evaluated users, so the question is
about the per-user differences, not two independent means: pairing removes the
(large) spread between easy and hard users and gives a much tighter interval.
Users are resampled with replacement, with the same engine as every other
interval over users (`intervals.resample`); the percentile interval of the
resampled mean differences is reported.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from recsys_cli.evaluation import intervals


@dataclass(frozen=True)
class PairedBootstrap:
    """mean(a) - mean(b) and mean(a) / mean(b) - 1, each with its percentile interval."""

    n: int
    mean_a: float
    mean_b: float
    difference: float
    low: float
    high: float
    relative: float
    relative_low: float
    relative_high: float
    confidence: float
    n_resamples: int

    def to_json(self) -> dict[str, float]:
        return asdict(self)


def paired_bootstrap(
    a: np.ndarray,
    b: np.ndarray,
    n_resamples: int = 10_000,
    seed: int = 0,
    confidence: float = 0.95,
) -> PairedBootstrap:
    """Bootstrap the mean of a - b over paired values (one per user, same order).

    The relative difference is mean(a) / mean(b) - 1 (NaN when mean(b) is 0); its
    interval comes from the same resamples as the difference's.

    >>> r = paired_bootstrap(np.array([0.2, 0.4, 0.6]), np.array([0.1, 0.2, 0.3]), n_resamples=200)
    >>> round(r.difference, 3), round(r.relative, 3), r.low <= r.difference <= r.high
    (0.2, 1.0, True)
    """
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1 or a.size == 0:
        raise ValueError(f"paired_bootstrap needs two non-empty 1-d arrays of one length, got {a.shape} and {b.shape}")
    if not 0 < confidence < 1 or n_resamples < 1:
        raise ValueError("confidence must be in (0, 1) and n_resamples >= 1")
    means = intervals.resample(np.column_stack([a, b]), n_resamples, seed).means
    low, high = intervals.interval(means[:, 0] - means[:, 1], confidence)
    # Resampled means carry float32 rounding (`intervals.resample` sums deviations in
    # float32): a draw of only zeros from b comes back as about +-1e-8 times its scale,
    # not 0, and dividing by it would put wild ratios in both tails. Below that noise a
    # mean counts as 0, its ratio undefined.
    zero = _ZERO_RELATIVE * float(np.abs(b).max())
    rel_low, rel_high = intervals.interval(_relative(means[:, 0], means[:, 1], zero), confidence)
    return PairedBootstrap(
        n=int(a.size),
        mean_a=float(a.mean()),
        mean_b=float(b.mean()),
        difference=float(a.mean() - b.mean()),
        low=float(low),
        high=float(high),
        relative=float(_relative(np.array([a.mean()]), np.array([b.mean()]))[0]),
        relative_low=float(rel_low),
        relative_high=float(rel_high),
        confidence=confidence,
        n_resamples=n_resamples,
    )


_ZERO_RELATIVE = 1e-6  # resampled means within this share of the values' scale are 0


def _relative(a: np.ndarray, b: np.ndarray, zero: float = 0.0) -> np.ndarray:
    """a / b - 1, NaN where |b| <= zero."""
    defined = np.abs(b) > zero
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(defined, a / np.where(defined, b, 1.0) - 1.0, np.nan)
