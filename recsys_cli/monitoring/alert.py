"""What `recsys monitor` does when it alerts: the reasons, and the hook.

The hook is the configured command, run with the JSON summary on its standard
input, so that mail, a chat webhook script or a scheduler's trigger can act on it.
It is split the way a shell splits words but run without a shell: the config
names a program, not a script to interpret. Its failure is reported, never fatal:
the report is already written and the exit code still says "alert".
"""

from __future__ import annotations

import json
import shlex
import subprocess
from collections.abc import Mapping
from typing import Any


def reasons(summary: Mapping[str, Any], staleness_limits: Mapping[str, Any]) -> list[str]:
    """Every reason to alert in a monitor summary, one line each (none: all well)."""
    return [
        *_drift_reasons(summary.get("data_drift", {})),
        *(
            f"performance: {metric} fell {_pct(row.get('relative_change'))} since the model was fresh"
            for metric, row in summary.get("performance", {}).get("metrics", {}).items()
            if row.get("significant_drop")
        ),
        *(
            f"fairness: the gap between {segment} groups widened significantly"
            for segment, row in summary.get("fairness", {}).items()
            if isinstance(row, Mapping) and row.get("gap_widened")
        ),
        *_staleness_reasons(summary.get("staleness", {}), staleness_limits),
    ]


def _drift_reasons(drift: Mapping[str, Any]) -> list[str]:
    rows = [*(r for r in drift.get("features", []) if r.get("flagged"))]
    rows += [{**d, "feature": d["name"]} for d in drift.get("distributions", []) if d.get("flagged")]
    return [f"data drift: {r['feature']} (PSI {_num(r.get('psi'))}, JS {_num(r.get('js'))})" for r in rows]


def _staleness_reasons(stale: Mapping[str, Any], limits: Mapping[str, Any]) -> list[str]:
    found = []
    for key, limit_key in (
        ("unknown_user_share", "max_unknown_user_share"),
        ("unknown_item_share", "max_unknown_item_share"),
        ("model_age_days", "max_age_days"),
    ):
        limit, value = limits.get(limit_key), stale.get(key)
        if limit is not None and value is not None and value > limit:
            found.append(f"staleness: {key} {_num(value)} > {limit}")
    return found


def run_hook(command: str, summary: Mapping[str, Any], timeout_s: float) -> dict[str, Any]:
    """Run the alert command with the summary on stdin; what happened, for the report."""
    argv = shlex.split(command)
    try:
        done = subprocess.run(
            argv,
            input=json.dumps(summary, default=str).encode(),
            capture_output=True,
            timeout=timeout_s,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return {"command": argv[0] if argv else command, "ok": False, "error": type(exc).__name__}
    return {"command": argv[0], "ok": done.returncode == 0, "returncode": done.returncode}


def _num(value: Any) -> str:
    return "-" if value is None else f"{float(value):.3g}"


def _pct(value: Any) -> str:
    return "-" if value is None else f"{-100 * float(value):.1f}%"
