"""When `recsys monitor` alerts, and what its hook hears."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from recsys_cli.monitoring.alert import reasons, run_hook

CALM = {
    "data_drift": {"features": [{"feature": "user.events_total", "flagged": False, "psi": 0.01, "js": 0.02}]},
    "performance": {"metrics": {"ndcg@10": {"significant_drop": False, "relative_change": -0.01}}},
    "fairness": {"activity_level": {"gap_widened": False}},
    "staleness": {"unknown_user_share": 0.3, "unknown_item_share": 0.05, "model_age_days": 40.0},
}
LIMITS = {"max_unknown_user_share": None, "max_unknown_item_share": 0.2, "max_age_days": None}


def test_a_calm_summary_has_no_reason_and_an_unset_limit_never_alerts() -> None:
    assert reasons(CALM, LIMITS) == []  # 30% unknown users, but no limit on them


def test_each_kind_of_trouble_is_one_line_naming_what() -> None:
    summary = json.loads(json.dumps(CALM))
    summary["data_drift"]["features"][0] |= {"flagged": True, "psi": 0.31}
    summary["data_drift"]["distributions"] = [{"name": "category mix", "flagged": True, "psi": 0.4, "js": 0.3}]
    summary["performance"]["metrics"]["ndcg@10"] |= {"significant_drop": True, "relative_change": -0.12}
    summary["fairness"]["activity_level"]["gap_widened"] = True
    summary["staleness"]["unknown_item_share"] = 0.25
    found = reasons(summary, {**LIMITS, "max_age_days": 30})
    assert found == [
        "data drift: user.events_total (PSI 0.31, JS 0.02)",
        "data drift: category mix (PSI 0.4, JS 0.3)",
        "performance: ndcg@10 fell 12.0% since the model was fresh",
        "fairness: the gap between activity_level groups widened significantly",
        "staleness: unknown_item_share 0.25 > 0.2",
        "staleness: model_age_days 40 > 30",
    ]


def test_the_hook_reads_the_summary_on_stdin_and_its_failure_is_reported_not_raised(tmp_path: Path) -> None:
    script, heard = tmp_path / "hook.py", tmp_path / "heard.json"
    script.write_text(f"import sys\nopen({str(heard)!r}, 'w').write(sys.stdin.read())\n")
    done = run_hook(f"{sys.executable} {script}", {"alerts": ["x"]}, timeout_s=30)
    assert done["ok"] and json.loads(heard.read_text()) == {"alerts": ["x"]}
    missing = run_hook(str(tmp_path / "no-such-program"), {"alerts": []}, timeout_s=30)
    assert missing == {"command": str(tmp_path / "no-such-program"), "ok": False, "error": "FileNotFoundError"}
    failing = run_hook(f"{sys.executable} -c 'raise SystemExit(4)'", {}, timeout_s=30)
    assert failing == {"command": sys.executable, "ok": False, "returncode": 4}
