"""`recsys explain` on a LightGBM ranker trained on the tiny synthetic shop: what it
writes, that it leaves the run loadable, and the runs and folders it refuses."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from typer.testing import CliRunner

from recsys_cli.cli import app

runner = CliRunner()
WIDE = {"COLUMNS": "220"}
RANKER = ["features=ranker", "features.ranker_windows=2"]
SMALL = ["model.generators.als.factors=8", "model.generators.als.iterations=3"]


def _train(lake: Path, runs: Path, *overrides: str) -> Path:
    before = set(runs.glob("*/*"))
    args = ["train", f"paths.data_dir={lake}", f"runs_dir={runs}", *RANKER, *overrides]
    result = runner.invoke(app, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    (run,) = set(runs.glob("*/*")) - before
    return run


@pytest.fixture(scope="module")
def runs(lake: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    for command in (["split"], ["features", *RANKER]):
        result = runner.invoke(app, [*command, f"paths.data_dir={lake}"], catch_exceptions=False)
        assert result.exit_code == 0, result.output
    root = tmp_path_factory.mktemp("runs")
    return {
        "ranker": _train(lake, root, "model=ranker_lgbm", "trainer=smoke", *SMALL),
        "popularity": _train(lake, root, "model=popularity"),
    }


def _explain(*args: str) -> Any:
    return runner.invoke(app, ["explain", *args], env=WIDE, catch_exceptions=False)


def test_explain_writes_every_figure_beside_the_run_and_leaves_it_loadable(runs: dict[str, Path]) -> None:
    from recsys_cli.registry.run_dir import open_run

    run = runs["ranker"]
    result = runner.invoke(app, ["explain", str(run), "--users", "15", "--top", "3"], env=WIDE)
    assert result.exit_code == 0, result.output
    assert "Top 3 features" in result.output and "average precision" in result.output
    folder = run / "explain" / "val"
    assert json.loads((folder / "manifest.json").read_text())["kind"] == "explanation"
    summary = json.loads((folder / "explain.json").read_text())  # strict: no NaN reaches the file
    assert summary["model"] == "TwoStageRanker" and summary["backend"] == "lightgbm"
    assert 0 < summary["pairs"]["users"] <= 15 and summary["pairs"]["pairs"] > 0
    assert sum(r["gain_share"] for r in summary["importance"]) == pytest.approx(1.0)
    assert len(summary["partial_dependence"]) == 3
    if summary["precision_recall"]["available"]:
        assert 0 <= summary["precision_recall"]["average_precision"] <= 1
    assert 0 <= summary["calibration"]["ece"] <= 1
    plots = {p.stem for p in (folder / "plots").glob("*.png")}
    assert {"importance", "partial_dependence", "reliability"} <= plots
    assert "plot-partial_dependence" in (folder / "report.html").read_text()
    frame = pl.read_parquet(folder / "contributions.parquet")
    per = frame.group_by("user_id", "rank").agg(pl.col("contribution").sum(), pl.col("raw_score").first())
    assert ((per["contribution"] - per["raw_score"]).abs() < 1e-6).all()
    assert frame["rank"].max() <= 10 and frame.group_by("user_id", "rank").len()["len"].unique().to_list() == [5]
    # The run's own files are untouched: it still opens, its manifest checks pass.
    assert open_run(run).path == run


def test_the_same_seed_explains_the_same_way_and_out_may_be_elsewhere(runs: dict[str, Path], tmp_path: Path) -> None:
    run = runs["ranker"]
    first = _explain(str(run), "--users", "10", "--seed", "3", "--out", str(tmp_path / "a"))
    second = _explain(str(run), "--users", "10", "--seed", "3", "--out", str(tmp_path / "b"))
    assert first.exit_code == second.exit_code == 0
    a, b = (json.loads((tmp_path / x / "explain.json").read_text()) for x in "ab")
    assert a["importance"] == b["importance"] and a["partial_dependence"] == b["partial_dependence"]
    again = _explain(str(run), "--users", "10", "--seed", "4", "--out", str(tmp_path / "a"))
    assert again.exit_code == 0  # an earlier explanation is replaced


def test_explain_refuses_other_models_and_folders_it_must_not_write(runs: dict[str, Path], tmp_path: Path) -> None:
    result = runner.invoke(app, ["explain", str(runs["popularity"])], env=WIDE)
    assert result.exit_code == 1
    assert "explain supports the two-stage ranker" in result.output and "Popularity" in result.output
    assert not (runs["popularity"] / "explain").exists()
    inside = runner.invoke(app, ["explain", str(runs["ranker"]), "--out", str(runs["ranker"] / "model" / "x")])
    assert inside.exit_code == 1 and "overlap" in inside.output
    (tmp_path / "notes.txt").write_text("mine")
    taken = runner.invoke(app, ["explain", str(runs["ranker"]), "--out", str(tmp_path)])
    assert taken.exit_code == 1 and "refusing" in taken.output and (tmp_path / "notes.txt").exists()
    wrong = runner.invoke(app, ["explain", str(runs["ranker"]), "--part", "train"])
    assert wrong.exit_code == 1 and "--part must be val or test" in wrong.output


def test_the_command_imports_no_heavy_library_until_it_runs() -> None:
    """`recsys explain --help` stays fast: LightGBM, torch, matplotlib and
    scikit-learn are imported inside the command."""
    code = (
        "import sys, recsys_cli.cli.explain; "
        "print(sorted(m for m in ('lightgbm', 'torch', 'matplotlib', 'sklearn') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
    help_text = runner.invoke(app, ["explain", "--help"], env=WIDE)
    assert help_text.exit_code == 0 and "--users" in help_text.output and "pred_contrib" in help_text.output
