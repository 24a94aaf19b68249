"""The experiment's JSON turned into words and plot rows: the closing summary,
the verdict words, and strict-JSON cleaning. Pure functions of the result dict,
so the CLI, the task and the tests read one source."""

from __future__ import annotations

import math
from typing import Any, cast

import numpy as np

from recsys_cli.abtest import plots
from recsys_cli.evaluation.significance import BETTER, SAME, WORSE


def verdict(difference: float | None, significant: bool) -> str:
    """The word for a lift: better, worse, or no significant difference."""
    if not significant or difference is None:
        return SAME
    return BETTER if difference > 0 else WORSE


def summary(result: dict[str, Any]) -> str:
    """Two sentences: the simulated verdict, then whether the logs agree."""
    metrics = {m["metric"]: m for m in result["metrics"]}
    primary = metrics[result["primary_metric"]]
    sequential = result["sequential"]
    days = result["period"]["days"]
    if sequential["method"] == "fixed_horizon":
        design = f"fixed horizon of {days} days"
        valid_p = ""
    else:
        stop = sequential["decision_day"]
        design = f"mSPRT, stopped on day {stop} of {days}" if stop else f"mSPRT, no stop in {days} days"
        at = (stop or days) - 1
        valid_p = f", always-valid p={p_text(sequential['daily'][at]['p_value'])}" if sequential["daily"] else ""
    decision = result["verdict"]
    said = "no significant difference" if decision == SAME else f"the treatment is {decision}"
    first = (
        f"Simulated experiment ({design}): {said} on {result['primary_metric']} "
        f"({lift_text(primary['lift'])} over the period, p={p_text(primary['lift']['p_value'])}{valid_p})."
    )
    off = result["offpolicy"]
    checked = metrics[off["compare_with"]]
    sim_verdict = verdict(checked["lift"]["difference"], checked["lift"]["significant"])
    parts = [f"{e['estimator']} {lift_text(e['lift'])}" for e in off["estimators"]]
    agree = [e["verdict"] == sim_verdict for e in off["estimators"]]
    word = "agree" if all(agree) else ("partly agree" if any(agree) else "disagree")
    second = (
        f"Off-policy on {off['actions']:,} logged actions ({'/'.join(off['reward_events'])} rate): "
        f"{'; '.join(parts)}; they {word} with the simulated {off['compare_with']} "
        f"({lift_text(checked['lift'])}, {sim_verdict})."
    )
    return f"{first} {second}"


def p_text(p: float | None) -> str:
    """A p-value in three significant digits (n/a when undefined)."""
    return "n/a" if p is None else f"{p:.3g}"


def lift_text(lift: dict[str, Any]) -> str:
    """ "+12.3% [+4.0%, +21.1%]", or less where the lift or its bounds are undefined."""
    rel, low, high = lift["relative"], lift["relative_low"], lift["relative_high"]
    if rel is None or not math.isfinite(rel):
        return "lift undefined"
    if low is None or high is None or not (math.isfinite(low) and math.isfinite(high)):
        return f"{rel:+.1%}"
    return f"{rel:+.1%} [{low:+.1%}, {high:+.1%}]"


def effects(result: dict[str, Any]) -> list[plots.Effect]:
    """One forest-plot row per simulated metric and per off-policy estimator."""
    rows = [plots.Effect(m["metric"], "simulated", *_rel(m["lift"])) for m in result["metrics"]]
    reward = "/".join(result["offpolicy"]["reward_events"])
    rows += [
        plots.Effect(f"{e['estimator']}: {reward}", "off-policy", *_rel(e["lift"]))
        for e in result["offpolicy"]["estimators"]
    ]
    return rows


def _rel(lift: dict[str, Any]) -> tuple[float, float, float]:
    values = (lift["relative"], lift["relative_low"], lift["relative_high"])
    return cast(tuple[float, float, float], tuple(math.nan if v is None else float(v) for v in values))


def finite(value: Any) -> Any:
    """Strict JSON: undefined numbers (a lift over a zero control) become null."""
    if isinstance(value, float | np.floating):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [finite(v) for v in value]
    return value
