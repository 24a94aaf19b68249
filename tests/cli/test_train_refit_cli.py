"""`recsys train part=test` repeats what the matching validation run chose, by itself."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from recsys_cli.cli import app
from recsys_cli.registry.integrity import MANIFEST, sha256_file

runner = CliRunner()
WIDE = {"COLUMNS": "400"}  # one-line messages are not wrapped by the terminal width


def train(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, ["train", *args], env=WIDE)
    return result.exit_code, result.output


def runs(root: Path, name: str) -> list[Path]:
    return sorted(p for p in (root / name).iterdir() if not p.name.startswith("."))


def test_the_refit_trains_for_the_validation_runs_best_epoch_and_says_where_from(
    prepared: Path, tmp_path: Path
) -> None:
    args = [f"paths.data_dir={prepared}", f"runs_dir={tmp_path / 'runs'}", "model=bpr_mf", "trainer=smoke"]
    # one epoch on validation (the cap given here is no part of what a refit must match)
    code, output = train(*args, "trainer.max_epochs=1")
    assert code == 0, output
    (val,) = runs(tmp_path / "runs", "bprmf")
    assert json.loads((val / "selection.json").read_text()) == {"best_epoch": 1, "params": {}}

    code, output = train(*args, "part=test")  # smoke's own max_epochs is 2
    assert code == 0, output
    test = runs(tmp_path / "runs", "bprmf")[-1]
    assert f"refit with trainer.max_epochs=1 as chosen by {val.resolve()}\n" in output
    assert "max_epochs: 1\n" in (test / "config.yaml").read_text()
    recorded = json.loads((test / "selection.json").read_text())
    assert recorded["from"] == {"run": str(val.resolve()), "manifest_sha256": sha256_file(val / MANIFEST)}
    assert (test / "selection.json").name in (test / MANIFEST).read_text()  # sealed with the run


def test_no_matching_validation_run_refuses_a_neural_refit_in_one_line(prepared: Path, tmp_path: Path) -> None:
    args = [f"paths.data_dir={prepared}", f"runs_dir={tmp_path / 'runs'}", "model=bpr_mf", "trainer=smoke"]
    code, output = train(*args, "trainer.max_epochs=1")
    assert code == 0, output
    code, output = train(*args, "part=test", "seed=7")  # another seed: another model
    assert code == 1 and len(output.strip().splitlines()) == 1 and output.strip().startswith("error:"), output
    assert "no validation run matches" in output and "differs in model.seed" in output and "part=val+test" in output
    assert len(runs(tmp_path / "runs", "bprmf")) == 1  # nothing written


def test_epochs_given_on_the_command_line_need_no_validation_run(prepared: Path, tmp_path: Path) -> None:
    args = [f"paths.data_dir={prepared}", f"runs_dir={tmp_path / 'runs'}", "model=bpr_mf", "trainer=smoke"]
    code, output = train(*args, "part=test", "trainer.max_epochs=1")
    assert code == 0, output
    (test,) = runs(tmp_path / "runs", "bprmf")
    assert not (test / "selection.json").exists() and "refit_from: none" in (test / "config.yaml").read_text()


def test_a_closed_form_model_that_chooses_nothing_refits_without_a_validation_run(
    prepared: Path, tmp_path: Path
) -> None:
    code, output = train(f"paths.data_dir={prepared}", f"runs_dir={tmp_path / 'runs'}", "model=popularity", "part=test")
    assert code == 0, output


def test_val_plus_test_writes_both_runs_and_prints_both_tables(prepared: Path, tmp_path: Path) -> None:
    args = [f"paths.data_dir={prepared}", f"runs_dir={tmp_path / 'runs'}", "model=bpr_mf", "trainer=smoke"]
    code, output = train(*args, "part=val+test")
    assert code == 0, output
    val, test = runs(tmp_path / "runs", "bprmf")
    assert "Metrics (val)" in output and "Metrics (test)" in output and output.count("run written") == 2
    assert "val/ndcg@10" in (val / "metrics.json").read_text() and "test/ndcg@10" in (test / "metrics.json").read_text()
    chosen = json.loads((val / "selection.json").read_text())["best_epoch"]
    recorded = json.loads((test / "selection.json").read_text())
    assert recorded["best_epoch"] == chosen and recorded["from"]["run"] == str(val.resolve())
    # the quiet trainer (smoke) logs every epoch of both fits: two with validation, the refit's
    assert output.count("epoch 1/") == 2 and output.count("(best ") >= 1
