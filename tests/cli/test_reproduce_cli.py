"""recsys reproduce end to end: the shipped CI experiment reproduces; a drifted
expectation, a leaking chain and a malformed file each exit 1 and say why."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from recsys_cli.cli import app
from recsys_cli.config import DEFAULT_CONF_DIR

runner = CliRunner()
SYNTH_SMALL = DEFAULT_CONF_DIR.parent / "experiments" / "synth_small.yaml"


def reproduce(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, ["reproduce", *args], catch_exceptions=False)
    return result.exit_code, result.output


def test_the_ci_experiment_reproduces_in_its_own_folder(tmp_path: Path) -> None:
    work = tmp_path / "work"
    code, output = reproduce(str(SYNTH_SMALL), "--workdir", str(work))
    assert code == 0, output
    assert "reproduced: 6 of 6 metrics within tolerance" in output
    assert "fold-0/test/ndcg@10" in output and "fail" not in output

    result = json.loads((work / "result.json").read_text())
    assert result["passed"] is True
    assert [c["status"] for c in result["checks"]] == ["pass"] * 6
    assert result["experiment"]["preset"] == "synth_small" and result["data"]["leakage_checked"] is True
    # The whole chain ran inside the work folder, and each run says how to repeat it.
    assert {p.name for p in (work / "data").iterdir()} == {"raw", "lake", "splits", "features"}
    assert set(result["runs"]) == {"fold-0/val", "fold-0/test"}
    for run in result["runs"].values():
        assert Path(run["run"]).is_relative_to(work / "runs") and (Path(run["run"]) / "metrics.json").is_file()
        assert run["command"].startswith("recsys train experiment=synth_small ")
    metrics = json.loads((Path(result["runs"]["fold-0/test"]["run"]) / "metrics.json").read_text())
    assert result["measured"]["fold-0/test/ndcg@10"] == metrics["test/ndcg@10"]
    assert result["data"]["events"] > 40_000 and result["code"]["recsys"]


def test_a_metric_outside_its_tolerance_fails_and_shows_the_table(tmp_path: Path) -> None:
    spec = yaml.safe_load(SYNTH_SMALL.read_text())
    spec["expected"]["fold-0/test/ndcg@10"]["value"] += 0.05  # far outside ±0.002
    spec["expected"]["fold-0/test/ndcg@5"] = {"value": 0.1, "abs": 1.0}  # eval.ks is [10, 20]
    drifted = tmp_path / "drifted.yaml"
    drifted.write_text(yaml.safe_dump(spec, sort_keys=False))

    code, output = reproduce(str(drifted), "--workdir", str(tmp_path / "work"), "--out", str(tmp_path / "r.json"))
    assert code == 1
    rows = {line.split("│")[1].strip(): line for line in output.splitlines() if line.count("│") > 2}
    assert "fail" in rows["fold-0/test/ndcg@10"] and "-0.0500" in rows["fold-0/test/ndcg@10"]
    assert "missing" in rows["fold-0/test/ndcg@5"]
    assert "pass" in rows["fold-0/val/ndcg@10"]
    assert "not reproduced: 2 of 7 metrics off: fold-0/test/ndcg@10, fold-0/test/ndcg@5" in output
    result = json.loads((tmp_path / "r.json").read_text())
    assert result["passed"] is False
    assert {c["metric"]: c["status"] for c in result["checks"] if c["status"] != "pass"} == {
        "fold-0/test/ndcg@10": "fail",
        "fold-0/test/ndcg@5": "missing",
    }


def test_a_leaking_chain_is_refused(tmp_path: Path) -> None:
    # Leave-last-N assigns parts per user, so later events of one user feed another's
    # training features: the leakage proof must stop the reproduction.
    conf = tmp_path / "conf"
    shutil.copytree(DEFAULT_CONF_DIR, conf)
    (conf / "experiment" / "leaky.yaml").write_text(
        "# @package _global_\ndefaults:\n  - override /split: leave_last_n\n  - override /model: popularity\n"
    )
    spec = {
        "preset": "leaky",
        "data": {"source": "synth", "generator": {"n_events": 6000, "n_days": 30}},
        "expected": {"fold-0/val/ndcg@10": {"value": 0.1, "abs": 1.0}},
    }
    path = tmp_path / "leaky.yaml"
    path.write_text(yaml.safe_dump(spec))
    code, output = reproduce(str(path), "--workdir", str(tmp_path / "work"), "--config-dir", str(conf))
    assert code == 1
    assert f"{path}: " in output and "leak(s) in the chain" in output
    assert not (tmp_path / "work" / "runs").exists() and not (tmp_path / "work" / "result.json").exists()


@pytest.mark.parametrize(
    ("edit", "field"),
    [
        (lambda s: s.pop("preset"), "preset: missing"),
        (lambda s: s["expected"]["fold-0/test/ndcg@10"].update(value="high"), "expected.fold-0/test/ndcg@10.value"),
        (lambda s: s.update(preset="nope"), "preset: no "),
        (lambda s: s["data"].update(source="movielens100k"), "data.source: 'movielens100k', but preset"),
    ],
    ids=["missing preset", "value not a number", "unknown preset", "other data"],
)
def test_a_malformed_experiment_is_one_red_line_and_nothing_is_written(
    tmp_path: Path, edit: object, field: str
) -> None:
    spec = yaml.safe_load(SYNTH_SMALL.read_text())
    edit(spec)  # type: ignore[operator]
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(spec))
    code, output = reproduce(str(path), "--workdir", str(tmp_path / "work"))
    assert code == 1
    assert output.startswith("error: ") and f"{path}: {field}" in " ".join(output.split())
    assert not (tmp_path / "work").exists()
