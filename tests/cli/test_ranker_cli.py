"""The two-stage ranker end to end: labelled windows, leakage proof, training,
calibration diagnostics and recommendations."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from recsys_cli.cli import app

runner = CliRunner()
SMALL_GENERATORS = ["model.generators.als.factors=8", "model.generators.als.iterations=3"]


@pytest.fixture(scope="module")
def windows(lake: Path) -> Path:
    for command in (["split"], ["features", "features=ranker", "features.ranker_windows=2"]):
        result = runner.invoke(app, [*command, f"paths.data_dir={lake}"], catch_exceptions=False)
        assert result.exit_code == 0, result.output
    return lake


def test_labelled_windows_lie_before_the_cutoff_and_pass_the_leakage_check(windows: Path) -> None:
    folder = windows / "features/synth/global_temporal-engagement/ranker/fold-0/val"
    manifest = json.loads((folder.parent.parent / "manifest.json").read_text())
    cutoff = manifest["folds"][0]["parts"]["val"]["cutoff"]
    for window in ("0", "1"):
        labels = pl.read_parquet(folder / "ranker" / window / "labels.parquet")
        last = pl.read_parquet(folder / "ranker" / window / "interactions.parquet")["last_ts"].max()
        assert labels.height > 0 and last is not None and last.isoformat() < cutoff
    args = [f"paths.data_dir={windows}", "features=ranker", "features.ranker_windows=2"]
    result = runner.invoke(app, ["check-leakage", *args], catch_exceptions=False)
    assert result.exit_code == 0 and "no leakage" in result.output


@pytest.mark.parametrize("model", ["ranker_lgbm", "ranker"])
def test_ranker_trains_reports_calibration_and_recommends(windows: Path, tmp_path: Path, model: str) -> None:
    args = [
        f"paths.data_dir={windows}",
        f"runs_dir={tmp_path}",
        "features=ranker",
        "features.ranker_windows=2",
        f"model={model}",
        "trainer=smoke",
        *SMALL_GENERATORS,
    ]
    result = runner.invoke(app, ["train", *args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    (run,) = (tmp_path / "twostageranker").iterdir()
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["val/ndcg@10"] > 0 and metrics["fit/holdout_pairs"] > 0
    assert 0 <= metrics["fit/holdout_ece_calibrated"] <= 1
    rec = runner.invoke(app, ["recommend", str(run), "--k", "5"], catch_exceptions=False)
    assert rec.exit_code == 0, rec.output
    recs = pl.read_parquet(run / "recommendations.parquet")
    assert recs.group_by("user_id").len()["len"].unique().to_list() == [5]
    # Candidates carry calibrated probabilities; the top of every list is a candidate.
    assert recs.filter(pl.col("rank") == 1)["score"].is_between(0, 1).all()


def test_ranker_without_labelled_windows_is_a_clear_error(windows: Path, tmp_path: Path) -> None:
    assert runner.invoke(app, ["features", f"paths.data_dir={windows}"]).exit_code == 0
    result = runner.invoke(app, ["train", f"paths.data_dir={windows}", f"runs_dir={tmp_path}", "model=ranker"])
    assert result.exit_code == 1 and "features=ranker" in result.output
    assert not any(tmp_path.rglob("*.yaml"))  # no half-made run folder left behind
