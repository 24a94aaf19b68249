"""`recsys abtest` on two tiny trained runs of the synthetic shop: the tables, the
JSON, the plots, reproducibility, and one-line errors that leave nothing behind."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from recsys_cli.cli import app

runner = CliRunner()
WIDE = {"COLUMNS": "250"}
PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def runs(lake: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Popularity and ItemKNN fitted on train, scored on validation."""
    root = tmp_path_factory.mktemp("runs")
    for command in (["split"], ["features"]):
        result = runner.invoke(app, [*command, f"paths.data_dir={lake}"], catch_exceptions=False)
        assert result.exit_code == 0, result.output
    out = {}
    for model, folder in (("popularity", "popularity"), ("item_knn", "itemknn")):
        args = ["train", f"paths.data_dir={lake}", f"runs_dir={root}", f"model={model}"]
        result = runner.invoke(app, args, catch_exceptions=False)
        assert result.exit_code == 0, result.output
        (out[model],) = (root / folder).iterdir()
    return out


def abtest(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, ["abtest", *args], env=WIDE)
    return result.exit_code, result.output


def test_abtest_reports_every_metric_and_writes_json_plots_and_config(runs: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "experiment"
    code, output = abtest(str(runs["popularity"]), str(runs["item_knn"]), "--out", str(out), "abtest.resamples=50")
    assert code == 0, output
    for metric in ("ctr", "add_to_cart_rate", "conversion *", "revenue_per_session", "average_order_value", "coverage"):
        assert f"│ {metric} " in output
    for estimator in ("replay", "ips", "snips"):
        assert f"│ {estimator} " in output
    assert "Power for a 5.0% lift in conversion" in output and "Fixed horizon: decided once on day" in output
    assert "Simulated experiment (fixed horizon of" in output and f"experiment written: {out}" in output

    saved = json.loads((out / "abtest.json").read_text())
    assert saved["primary_metric"] == "conversion" and saved["window"]["part"] == "val"
    assert saved["period"]["part"] == "val" and saved["period"]["days"] >= 1
    users = saved["assignment"]["users"]
    assert users["control"] > 0 and users["treatment"] > 0 and users["excluded"] == 0
    assert 0 <= saved["assignment"]["sample_ratio_p"] <= 1
    metrics = {m["metric"]: m for m in saved["metrics"]}
    assert list(metrics) == [
        "ctr",
        "add_to_cart_rate",
        "conversion",
        "revenue_per_session",
        "average_order_value",
        "coverage",
    ]
    for m in metrics.values():
        for arm in ("control", "treatment"):
            e = m[arm]
            assert e["value"] is not None and e["value"] >= 0
            assert e["low"] is None or e["low"] <= e["value"] <= e["high"]
        assert set(m["lift"]) >= {"relative", "relative_low", "relative_high", "p_value", "significant"}
    assert 0 < metrics["ctr"]["control"]["value"] < 1
    assert saved["power"]["users_needed_control"] > 0 and 0 < saved["power"]["achieved_power"] <= 1
    assert saved["sequential"]["method"] == "fixed_horizon"
    assert len(saved["sequential"]["daily"]) == saved["period"]["days"]
    assert [e["estimator"] for e in saved["offpolicy"]["estimators"]] == ["replay", "ips", "snips"]
    assert saved["simulator"]["simulator"].endswith("PositionBasedModel")
    assert saved["simulator"]["examination"][:2] == [1.0, 0.5]
    assert set(saved["simulator"]["funnel"]["stages"]) == {"click", "cart", "purchase"}
    assert saved["config"]["abtest"]["resamples"] == 50 and saved["seed"] == 0
    for plot in ("lift.png", "effects.png"):
        assert (out / plot).read_bytes().startswith(PNG)
    assert "PositionBasedModel" in (out / "config.yaml").read_text()
    assert not list(tmp_path.glob(".experiment.*"))  # no staging folder left behind


def test_the_same_seed_gives_the_same_experiment_and_a_new_salt_another(runs: dict[str, Path], tmp_path: Path) -> None:
    base = [str(runs["popularity"]), str(runs["item_knn"]), "abtest.resamples=20"]
    results = []
    for name, extra in (("a", []), ("b", []), ("c", ["abtest.assignment.salt=another"])):
        code, output = abtest(*base, *extra, "--out", str(tmp_path / name))
        assert code == 0, output
        results.append(json.loads((tmp_path / name / "abtest.json").read_text()))
    a, b, c = results
    assert a["metrics"] == b["metrics"] and a["offpolicy"] == b["offpolicy"] and a["assignment"] == b["assignment"]
    assert a["assignment"]["users"] != c["assignment"]["users"] or a["metrics"] != c["metrics"]


def test_cascade_simulator_msprt_and_an_uneven_split(runs: dict[str, Path], tmp_path: Path) -> None:
    overrides = [
        "abtest/simulator=cascade",
        "abtest/sequential=msprt",
        "abtest.assignment.control=0.3",
        "abtest.assignment.treatment=0.3",
        "abtest.primary_metric=ctr",
        "abtest.resamples=20",
    ]
    code, output = abtest(str(runs["popularity"]), str(runs["item_knn"]), *overrides, "--out", str(tmp_path / "x"))
    assert code == 0, output
    assert "Sequential test (mSPRT, always-valid p-values)" in output
    saved = json.loads((tmp_path / "x" / "abtest.json").read_text())
    assert saved["simulator"]["simulator"].endswith("CascadeModel") and saved["sequential"]["method"] == "msprt"
    assert saved["assignment"]["users"]["excluded"] > 0 and saved["primary_metric"] == "ctr"
    assert saved["sequential"]["params"]["relative_tau"] == 0.05


def test_an_a_a_test_of_one_run_against_itself(runs: dict[str, Path], tmp_path: Path) -> None:
    run = str(runs["item_knn"])
    code, output = abtest(run, run, "abtest.resamples=20", "--out", str(tmp_path / "aa"))
    assert code == 0, output
    saved = json.loads((tmp_path / "aa" / "abtest.json").read_text())
    assert saved["control"]["label"] != saved["treatment"]["label"]
    for e in saved["offpolicy"]["estimators"]:  # same slates, same logs: exactly no difference
        assert e["lift"]["difference"] == 0 and e["verdict"] == "no significant difference"


def test_default_output_sits_beside_the_runs(runs: dict[str, Path]) -> None:
    code, output = abtest(str(runs["popularity"]), str(runs["item_knn"]), "abtest.resamples=10")
    assert code == 0, output
    (folder,) = (runs["popularity"].parents[1] / "abtests").iterdir()
    assert (folder / "abtest.json").is_file()


def test_an_experiment_never_replaces_the_runs_folder_but_replaces_its_own(
    runs: dict[str, Path], tmp_path: Path
) -> None:
    root = runs["popularity"].parents[1]
    before = sorted(root.rglob("*"))
    code, output = abtest(str(runs["popularity"]), str(runs["item_knn"]), "--out", str(root))
    lines = [line for line in output.splitlines() if line.strip()]
    assert code == 1 and len(lines) == 1 and "refusing to replace a folder that holds the input" in lines[0], output
    assert sorted(root.rglob("*")) == before
    out = tmp_path / "experiment"
    for _ in range(2):  # a rerun replaces its own earlier experiment
        code, output = abtest(str(runs["popularity"]), str(runs["item_knn"]), "--out", str(out), "abtest.resamples=10")
        assert code == 0, output
    assert json.loads((out / "manifest.json").read_text()) == {"kind": "abtest"}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["{missing}", "{knn}"], "no such run folder"),
        (["{pop}", "{knn}", "abtest.primary_metric=ndcg"], "abtest.primary_metric = 'ndcg': must be one of"),
        (["{pop}", "{knn}", "abtest.assignment.control=0.8"], "sum to at most 1"),
        (["{pop}", "{knn}", "abtest/simulator=bandit"], "config 'abtest'"),
        (
            ["{pop}", "{knn}", "abtest.offpolicy.reward_events=[basket]"],
            "abtest.offpolicy.reward_events[0] = 'basket': must be one of",
        ),
        (
            ["{pop}", "{knn}", "abtest.simulator.funnel.holdout_fraction=1.5"],
            "abtest.simulator.funnel.holdout_fraction = 1.5: must be < 1",
        ),
        (
            ["{pop}", "{knn}", "abtest.simulator._target_=nowhere.Model"],
            "abtest.simulator._target_ = 'nowhere.Model': must name a click model",
        ),
    ],
)
def test_bad_input_is_one_line_and_writes_nothing(
    runs: dict[str, Path], tmp_path: Path, args: list[str], message: str
) -> None:
    paths = {"pop": runs["popularity"], "knn": runs["item_knn"], "missing": tmp_path / "nope"}
    out = tmp_path / "never"
    code, output = abtest(*(a.format(**paths) for a in args), "--out", str(out))
    assert code == 1 and message in output, output
    assert "Traceback" not in output and not out.exists()


def test_runs_of_different_parts_are_refused(runs: dict[str, Path], lake: Path, tmp_path: Path) -> None:
    args = ["train", f"paths.data_dir={lake}", f"runs_dir={tmp_path / 'runs'}", "model=popularity", "part=test"]
    assert runner.invoke(app, args, catch_exceptions=False).exit_code == 0
    (test_run,) = (tmp_path / "runs" / "popularity").iterdir()
    code, output = abtest(str(runs["popularity"]), str(test_run), "--out", str(tmp_path / "x"))
    assert code == 1 and "different windows: part is 'val'" in output
    code, output = abtest(str(test_run), str(test_run), "abtest.part=val", "--out", str(tmp_path / "x"))
    assert code == 1 and "have seen the validation period" in output
    assert not (tmp_path / "x").exists()
