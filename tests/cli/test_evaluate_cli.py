"""`recsys evaluate` on runs trained on the tiny synthetic shop: what it writes,
that it agrees with `recsys train`, which windows it accepts, and its errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest
from typer.testing import CliRunner

from recsys_cli.cli import app
from recsys_cli.features.vocab import Vocabulary
from recsys_cli.tasks.evaluate import engagement_probabilities, interactions_per_user

runner = CliRunner()
WIDE = {"COLUMNS": "220"}
QUICK = ["eval.ks=[5,10]", "eval.bootstrap.resamples=200"]
SPLIT = Path("splits/synth/global_temporal-engagement")


def train(data: Path, runs: Path, *overrides: str) -> Path:
    before = set(runs.glob("*/*"))
    args = ["train", f"paths.data_dir={data}", f"runs_dir={runs}", *overrides]
    result = runner.invoke(app, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    (run,) = set(runs.glob("*/*")) - before
    return run


@pytest.fixture(scope="module")
def val_run(prepared: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return train(prepared, tmp_path_factory.mktemp("runs"), "model=item_knn")


def evaluate(run: Path, *overrides: str) -> Any:
    return runner.invoke(app, ["evaluate", str(run), *QUICK, *overrides], env=WIDE, catch_exceptions=False)


def strict_json(path: Path) -> dict[str, Any]:
    def refuse(constant: str) -> None:
        raise AssertionError(f"{path} holds {constant}, which is not JSON")

    return json.loads(path.read_text(), parse_constant=refuse)


def test_evaluate_writes_metrics_report_and_per_user_values(val_run: Path, prepared: Path) -> None:
    result = evaluate(val_run)
    assert result.exit_code == 0, result.output
    folder = val_run / "eval" / "val"
    assert f"evaluation written: {folder}" in result.output.replace("\n", "")
    for title in ("ItemKNN on val", "Beyond accuracy", "Calibration", "Users by segment", "Exposure by item group"):
        assert title in result.output
    assert "ItemKNN gives ranking scores, not engagement probabilities" in result.output

    summary = strict_json(folder / "metrics.json")
    targets = pl.read_parquet(prepared / SPLIT / "fold-0" / "val_targets.parquet")
    assert summary["users"]["evaluated"] == targets["user_id"].n_unique()  # cold-start users included
    assert summary["users"]["cold_start"] == targets.filter("cold")["user_id"].n_unique() > 0
    assert summary["part"] == "val" and summary["model"] == "ItemKNN" and summary["ks"] == [5, 10]
    assert set(summary["segments"]["users"]) == {"cold_start", "activity", "age_bucket", "gender", "region"}
    assert set(summary["segments"]["items"]) == {"popularity_tier", "category", "new_products"}
    assert summary["calibration"]["available"] is False

    per_user = pl.read_parquet(folder / "per_user.parquet")
    assert per_user.height == summary["users"]["evaluated"]
    assert per_user["user_id"].to_list() == targets["user_id"].unique().sort().to_list()
    for name in ("ndcg@10", "map@5", "novelty@10", "diversity@5", "new_items@10"):
        assert per_user[name].mean() == pytest.approx(summary["headline"][name]["value"]), name
    cold = per_user.filter(pl.col("cold_start") == "cold-start")
    assert cold.height == summary["users"]["cold_start"] and (cold["activity"] == "0").all()

    html = (folder / "report.html").read_text()
    assert html.count("data:image/png;base64,") == 3  # metric bars, exposure by tier, segment gaps
    assert sorted(p.name for p in (folder / "plots").iterdir()) == [
        "exposure_by_tier.png",
        "metrics.png",
        "segment_gaps.png",
    ]


def test_warm_users_give_the_metrics_train_reported(val_run: Path, tmp_path: Path) -> None:
    out = tmp_path / "warm"
    result = evaluate(val_run, "eval.users=warm", f"out_dir={out}")
    assert result.exit_code == 0, result.output
    summary = strict_json(out / "metrics.json")
    trained = json.loads((val_run / "metrics.json").read_text())
    assert summary["users"]["evaluated"] == trained["val/users"] and summary["users"]["cold_start"] == 0
    for k in (10,):
        for name in ("ndcg", "recall", "precision", "hitrate", "mrr"):
            assert summary["headline"][f"{name}@{k}"]["value"] == pytest.approx(trained[f"val/{name}@{k}"]), name
        assert summary["beyond"][f"coverage@{k}"] == pytest.approx(trained[f"val/coverage@{k}"])


def test_a_validation_run_can_be_scored_on_the_later_test_window(val_run: Path, prepared: Path) -> None:
    result = evaluate(val_run, "part=test")
    assert result.exit_code == 0, result.output
    summary = strict_json(val_run / "eval" / "test" / "metrics.json")
    manifest = json.loads((prepared / SPLIT / "manifest.json").read_text())["folds"][0]
    assert summary["part"] == "test" and summary["run_part"] == "val"
    assert summary["window"] == {"start": manifest["test_start"], "end": manifest["test_end"]}


def test_a_refitted_test_run_is_never_scored_on_validation(prepared: Path, tmp_path: Path) -> None:
    test_run = train(prepared, tmp_path, "model=popularity", "part=test")
    line = one_line_error(["evaluate", str(test_run), *QUICK, "part=val"])
    assert "refitted on train + validation" in line
    assert not (test_run / "eval").exists()


def test_rerunning_replaces_the_evaluation_whole(val_run: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert evaluate(val_run, "eval.bootstrap.seed=1").exit_code == 0
    folder = val_run / "eval" / "val"
    before = strict_json(folder / "metrics.json")

    def broken(summary: dict[str, Any]) -> None:
        raise RuntimeError("disk full")

    monkeypatch.setattr("recsys_cli.evaluation.report.render_report", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        evaluate(val_run, "eval.bootstrap.seed=2")
    assert strict_json(folder / "metrics.json") == before  # the previous evaluation is untouched
    assert not [p for p in folder.parent.iterdir() if p.name.startswith(".")]  # no staging folder left behind


def test_an_evaluation_never_replaces_its_run_its_data_or_a_foreign_folder(
    val_run: Path, prepared: Path, tmp_path: Path
) -> None:
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "todo.txt").write_text("mine")
    for out_dir, message in (
        (val_run, "refusing to replace a folder that holds the input"),
        (val_run / "model", "refusing to replace the input"),
        (prepared / "lake" / "synth", "refusing to replace the input"),
        (tmp_path / "notes", "not an evaluation written by recsys: no manifest.json"),
    ):
        before = sorted(p for p in out_dir.rglob("*"))
        assert message in one_line_error(["evaluate", str(val_run), *QUICK, f"out_dir={out_dir}"])
        assert sorted(p for p in out_dir.rglob("*")) == before
    assert (tmp_path / "notes" / "todo.txt").read_text() == "mine"


def one_line_error(args: list[str]) -> str:
    result = runner.invoke(app, args, env=WIDE)
    assert result.exit_code == 1, result.output
    lines = [line for line in result.output.strip().splitlines() if line.strip()]
    assert lines[-1].startswith("error:") and not any("Traceback" in line for line in lines), result.output
    return lines[-1]


def test_bad_runs_and_settings_are_one_line_errors(val_run: Path, tmp_path: Path) -> None:
    missing = tmp_path / "runs" / "nope"
    assert str(missing) in one_line_error(["evaluate", str(missing)])
    assert "not a run folder" in one_line_error(["evaluate", str(tmp_path)])
    assert "eval.primary" in one_line_error(["evaluate", str(val_run), *QUICK, "eval.primary=ndcg@20"])
    assert "lower eval.ks" in one_line_error(["evaluate", str(val_run), "eval.ks=[10,100000]"])
    assert "eval.users" in one_line_error(["evaluate", str(val_run), *QUICK, "eval.users=some"])
    assert "config 'evaluate'" in one_line_error(["evaluate", str(val_run), "eval=nope"])


class ScoredModel:
    """Scores that are probabilities, and a predict_proba that agrees (or not)."""

    def __init__(self, agree: bool) -> None:
        self.agree = agree

    def predict_proba(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        probs = (items % 10) / 10
        return probs if self.agree else probs / 2


def test_engagement_probabilities_come_from_the_model() -> None:
    users = np.array([0, 3, 4, 5])
    recs = np.array([[1, 2], [3, 4], [5, 6], [7, 8]])
    scores = (recs % 10) / 10
    probs, scored, note = engagement_probabilities(ScoredModel(agree=True), users, recs, scores, 2)  # type: ignore[arg-type]
    assert probs is not None and scored is not None
    np.testing.assert_allclose(probs, scores)
    assert scored.tolist() == [False, True, True, True] and "cold-start users" in note
    # When the scores are not the probabilities, every slot is asked for.
    probs, _, _ = engagement_probabilities(ScoredModel(agree=False), users, recs, scores, 2)  # type: ignore[arg-type]
    np.testing.assert_allclose(probs, scores / 2)
    none, _, why = engagement_probabilities(object(), users, recs, scores, 2)  # type: ignore[arg-type]
    assert none is None and why == "object gives ranking scores, not engagement probabilities"


def test_evaluate_help_does_not_import_heavy_libraries() -> None:
    code = (
        "import sys; from typer.testing import CliRunner; from recsys_cli.cli import app; "
        "r = CliRunner().invoke(app, ['evaluate', '--help']); assert r.exit_code == 0, r.output; "
        "heavy = [m for m in ('polars', 'scipy', 'numpy', 'torch', 'hydra', 'matplotlib') if m in sys.modules]; "
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


@pytest.mark.slow
def test_a_ranker_run_gets_its_calibration_checked(lake: Path, tmp_path: Path) -> None:
    for command in (["split"], ["features", "features=ranker", "features.ranker_windows=2"]):
        assert runner.invoke(app, [*command, f"paths.data_dir={lake}"], catch_exceptions=False).exit_code == 0
    run = train(
        lake,
        tmp_path,
        "features=ranker",
        "features.ranker_windows=2",
        "model=ranker_lgbm",
        "trainer=smoke",
        "model.generators.als.factors=8",
        "model.generators.als.iterations=3",
    )
    result = evaluate(run)
    assert result.exit_code == 0, result.output
    summary = strict_json(run / "eval" / "val" / "metrics.json")
    cal = summary["calibration"]
    assert cal["available"] and cal["users"] == summary["users"]["evaluated"] - summary["users"]["cold_start"]
    assert 0 <= cal["ece"] <= 1 and cal["pairs"] == cal["users"] * 10
    assert "plot-reliability" in (run / "eval" / "val" / "report.html").read_text()


def test_activity_counts_every_interaction_not_only_the_seen_ones(tmp_path: Path) -> None:
    """A user's activity segment is how many items they interacted with before the
    cutoff, although the model excludes only those the target counts as seen: u1
    viewed a, bought b and removed c from the cart (weight 0: no interaction)."""
    from omegaconf import OmegaConf

    folder = tmp_path / "fold-0" / "val"
    folder.mkdir(parents=True)
    pl.DataFrame(
        {
            "user_id": ["u1", "u1", "u1", "u2", "gone"],
            "item_id": ["a", "b", "c", "a", "a"],
            "weight": [1.0, 5.0, 0.0, 1.0, 1.0],
            "seen": [False, True, True, False, False],
        }
    ).write_parquet(folder / "interactions.parquet")
    run_cfg = OmegaConf.create({"features_dir": str(tmp_path), "fold": "fold-0"})
    counts = interactions_per_user(run_cfg, "val", Vocabulary(("<oov>", "u1", "u2", "u3")))
    assert counts.tolist() == [0, 2, 1, 0]  # the unknown user and u3 have none


@pytest.fixture(scope="module")
def popularity_run(prepared: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return train(prepared, tmp_path_factory.mktemp("baseline"), "model=popularity")


def test_a_baseline_adds_the_slices_where_the_run_loses(val_run: Path, popularity_run: Path, tmp_path: Path) -> None:
    out = tmp_path / "against"
    result = evaluate(val_run, f"out_dir={out}", "--baseline", str(popularity_run))
    assert result.exit_code == 0, result.output
    label = "/".join(popularity_run.resolve().parts[-2:])
    assert f"Error slices against {label} (Popularity)" in result.output.replace("\n", "")

    summary = strict_json(out / "metrics.json")
    sl = summary["slices"]
    assert sl["baseline"] == {"run": str(popularity_run.resolve()), "label": label, "model": "Popularity"}
    assert sl["metric"] == "ndcg@10" and sl["item_metric"] == "recall@10"
    # Every user of the window is scored by both (cold-start ones by the fallback): nobody left out.
    assert sl["users"] == {
        "compared": summary["users"]["evaluated"],
        "left_out": 0,
        "only_model": 0,
        "only_baseline": 0,
    }
    overall = sl["overall"]
    assert overall["mean_a"] == pytest.approx(summary["headline"]["ndcg@10"]["value"])
    assert overall["difference"] == pytest.approx(overall["mean_a"] - overall["mean_b"])

    rows = sl["rows"]
    judged = [r["difference"] for r in rows if r["verdict"] != "too few users"]
    assert [r["difference"] for r in rows[: len(judged)]] == sorted(judged)  # biggest losses first, small ones last
    by = {(r["kind"], r["by"]) for r in rows}
    assert {("users", "cold_start"), ("users", "activity"), ("users", "gender")} <= by
    assert {("items", "popularity_tier"), ("items", "category"), ("items", "new_products")} <= by
    for r in rows:
        assert r["low"] <= r["difference"] + 1e-9 and r["difference"] <= r["high"] + 1e-9, r
        assert (r["verdict"] == "loses") == (r["high"] < 0 and r["users"] >= sl["min_users"] == 20), r
    # User slices average the same per-user values as the segment tables.
    cold = next(r for r in rows if r["by"] == "cold_start" and r["group"] == "cold-start")
    segment = next(g for g in summary["segments"]["users"]["cold_start"] if g["group"] == "cold-start")
    assert cold["model"] == pytest.approx(segment["ndcg@10"]) and cold["users"] == segment["users"]
    # Item slices count each window positive once per grouping.
    positives = pl.read_parquet(prepared_targets(val_run)).select("user_id", "item_id").unique().height
    for name in ("popularity_tier", "category"):
        assert sum(r["positives"] for r in rows if r["by"] == name) == positives, name

    html = (out / "report.html").read_text()
    assert f"Error slices against {label}" in html and 'id="slices"' in html


def prepared_targets(run: Path) -> Path:
    from recsys_cli.registry.run_dir import load_run_config

    cfg = load_run_config(run)
    return Path(cfg.split_dir) / cfg.fold / f"{cfg.part}_targets.parquet"


def test_without_a_baseline_there_are_no_slices(val_run: Path, tmp_path: Path) -> None:
    assert evaluate(val_run, f"out_dir={tmp_path / 'plain'}").exit_code == 0
    assert "slices" not in strict_json(tmp_path / "plain" / "metrics.json")
    assert 'id="slices"' not in (tmp_path / "plain" / "report.html").read_text()


def test_a_baseline_of_another_window_is_refused(val_run: Path, prepared: Path, tmp_path: Path) -> None:
    refitted = train(prepared, tmp_path / "runs", "model=popularity", "part=test")
    out = tmp_path / "never"
    line = one_line_error(["evaluate", str(val_run), *QUICK, f"out_dir={out}", "--baseline", str(refitted)])
    ours, theirs = ("/".join(p.resolve().parts[-2:]) for p in (val_run, refitted))
    assert line.startswith("error: --baseline:") and ours in line and theirs in line and "part" in line
    assert not out.exists()
    assert "the run itself" in one_line_error(["evaluate", str(val_run), *QUICK, "--baseline", str(val_run)])
    assert "no such run folder" in one_line_error(["evaluate", str(val_run), "--baseline", str(tmp_path / "nope")])


def test_an_evaluation_never_replaces_its_baseline(val_run: Path, popularity_run: Path) -> None:
    before = sorted(p for p in popularity_run.rglob("*"))
    args = ["evaluate", str(val_run), *QUICK, f"out_dir={popularity_run}", "--baseline", str(popularity_run)]
    assert "refusing to replace a folder that holds the input" in one_line_error(args)
    assert sorted(p for p in popularity_run.rglob("*")) == before
