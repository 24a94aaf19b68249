"""Promote only what is not significantly worse: the gate of a retrain.

A candidate and the production model are scored on the same users of the newest
window, so each guarded metric is a paired comparison (`bootstrap.paired_bootstrap`):
the interval of mean(candidate) / mean(production) - 1. The candidate is refused
when that whole interval lies below `-tolerance` on any guarded metric: a
non-inferiority margin (0: any significant drop refuses; 0.02: a drop must be
surely larger than 2%). With a `primary` metric, the candidate must also be
significantly better on it (its interval above 0); without one, "no worse" is
enough, which lets a retrain that keeps quality while knowing newer items through.

Several guarded metrics are not corrected for multiplicity on purpose: each extra
test can only refuse, so the gate errs towards keeping production.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from recsys_cli.errors import RecsysError
from recsys_cli.evaluation.bootstrap import paired_bootstrap


class GuardError(RecsysError):
    """The two models' per-user metrics cannot be compared as given."""


@dataclass(frozen=True)
class Decision:
    promote: bool
    reasons: list[str]  # why not, or why yes: one line each
    metrics: dict[str, dict[str, float]] = field(default_factory=dict)  # the paired bootstrap per metric

    def to_json(self) -> dict[str, Any]:
        return {"promote": self.promote, "reasons": self.reasons, "metrics": self.metrics}


def promotion_decision(
    candidate: Mapping[str, np.ndarray],
    production: Mapping[str, np.ndarray],
    guarded: Sequence[str],
    primary: str | None = None,
    tolerance: float = 0.0,
    resamples: int = 2000,
    seed: int = 0,
    confidence: float = 0.95,
) -> Decision:
    """Whether to promote the candidate (module docstring); `candidate[m]` and
    `production[m]` hold metric m per user, the same users in the same order."""
    names = list(dict.fromkeys([*guarded, *([primary] if primary else [])]))
    missing = [m for m in names if m not in candidate or m not in production]
    if missing or not names:
        raise GuardError(f"promotion guard: no per-user values for {missing or 'any metric'}")
    if tolerance < 0:
        raise GuardError(f"promotion guard: tolerance must be >= 0, got {tolerance}")
    results = {m: paired_bootstrap(candidate[m], production[m], resamples, seed, confidence) for m in names}
    reasons = []
    for m in guarded:
        r = results[m]
        if r.relative_high < -tolerance:
            reasons.append(
                f"{m}: significantly worse than production ({r.relative:+.1%}, interval "
                f"[{r.relative_low:+.1%}, {r.relative_high:+.1%}] below -{tolerance:.1%})"
            )
    if primary is not None and not results[primary].relative_low > 0:
        r = results[primary]
        reasons.append(
            f"{primary}: not significantly better than production ({r.relative:+.1%}, interval "
            f"[{r.relative_low:+.1%}, {r.relative_high:+.1%}])"
        )
    promote = not reasons
    if promote:
        reasons = [
            f"{m}: {r.relative:+.1%} against production (interval [{r.relative_low:+.1%}, {r.relative_high:+.1%}]), "
            + ("significantly better" if r.relative_low > 0 else "not significantly worse")
            for m in guarded
            if (r := results[m])
        ]
        if primary is not None:
            reasons.append(f"{primary}: significantly better ({results[primary].relative:+.1%})")
    return Decision(promote, reasons, {m: r.to_json() for m, r in results.items()})
