"""Bad settings and option values through the CLI: refused before any work, as one
line naming the key or option, with nothing written (see also tests/test_config_schema.py)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from recsys_cli.cli import app

runner = CliRunner()


def refused(args: list[str], message: str, code: int = 1) -> str:
    result = runner.invoke(app, args)
    assert result.exit_code == code, result.output
    assert message in result.output and "Traceback" not in result.output, result.output
    return result.output


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["model=ease", "model.l2=-1"], "config 'train': model.l2 = -1: must be > 0"),
        (["model=bpr_mf", "trainer.max_epochs=0"], "config 'train': trainer.max_epochs = 0: must be >= 1"),
        (["model=two_tower", "model.dim=-16"], "config 'train': model.dim = -16: must be >= 1"),
        (["seed=abc"], "config 'train': seed = 'abc': must be an integer"),
        (["eval.ks=[0]"], "config 'train': eval.ks[0] = 0: must be >= 1"),
        (["split.val_fraction=0.95"], "config 'train': split.test_fraction = 0.1: must be below 1 - val_fraction"),
        (["model=ease", "+model.l2reg=1"], "config 'train': model.l2reg = 1: unknown key; known: _target_, l2"),
    ],
)
def test_train_refuses_invalid_hyperparameters_before_any_work(
    tmp_path: Path, overrides: list[str], message: str
) -> None:
    runs = tmp_path / "runs"
    output = refused(["train", f"paths.data_dir={tmp_path / 'data'}", f"runs_dir={runs}", *overrides], message)
    assert output.count("\n") == 1
    assert not runs.exists() and not (tmp_path / "data").exists()


def test_a_models_cross_key_check_runs_before_any_data_is_read(tmp_path: Path) -> None:
    """The ranker's LightGBM settings are checked by its constructor (they need LightGBM's
    parameter list); train builds the model first, so no data folder is even looked at."""
    args = ["train", f"paths.data_dir={tmp_path / 'none'}", f"runs_dir={tmp_path / 'runs'}", "model=ranker"]
    refused([*args, "model.lightgbm_grid={num_leaves:[7,15]}"], "model.lightgbm_grid applies to backend=lightgbm")
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize(
    "overrides",
    [
        ["data.generator.n_events=0"],
        ["data.generator.n_events=-5"],
        ["data.generator.n_days=0"],
        ["+data.generator.n_clusters=0"],
        ["+data.generator.n_users=-1"],
    ],
)
def test_synth_refuses_non_positive_sizes_and_writes_nothing(tmp_path: Path, overrides: list[str]) -> None:
    key = overrides[0].lstrip("+").split("=")[0]
    refused(["datasets", "synth", f"paths.data_dir={tmp_path / 'data'}", *overrides], f"config 'ingest': {key} = ")
    assert not (tmp_path / "data").exists()


@pytest.mark.parametrize("k", ["0", "-1", "1.5", "abc", "1000001", "99999999999999999999"])
def test_recommend_refuses_k_out_of_range(tmp_path: Path, k: str) -> None:
    refused(["recommend", str(tmp_path), "--k", k], "--k", code=2)


def test_split_refuses_cutoffs_past_the_lakes_events(lake: Path, tmp_path: Path) -> None:
    out = tmp_path / "split"
    args = ["split", f"paths.data_dir={lake}", f"split_dir={out}", "split.val_cutoff=2031-01-01"]
    refused([*args, "split.test_cutoff=2031-02-01"], "fold-0: no events in the test part from 2031-02-01")
    assert not out.exists()


def test_the_recommend_task_refuses_k_below_one_before_reading_the_run(tmp_path: Path) -> None:
    from recsys_cli.errors import ConfigError
    from recsys_cli.tasks import recommend

    for k in (0, -1):
        with pytest.raises(ConfigError, match=r"--k: items per user must be a whole number >= 1, got"):
            recommend.run(tmp_path / "no-run", k, None, None)


@pytest.mark.parametrize(
    "options",
    [
        ["--alpha", "0"],
        ["--alpha", "1"],
        ["--alpha", "nan"],
        ["--seed", "-1"],
        ["--resamples", "0"],
        ["--resamples", "2000000"],
    ],
)
def test_compare_refuses_options_out_of_range(tmp_path: Path, options: list[str]) -> None:
    refused(["compare", str(tmp_path / "a"), str(tmp_path / "b"), *options], options[0], code=2)


@pytest.mark.parametrize(
    "options",
    [
        ["--trials", "0"],
        ["--workers", "0"],
        ["--workers", "100000"],
        ["--timeout", "0"],
        ["--timeout", "0m"],
        ["--timeout", "-5"],
    ],
)
def test_sweep_refuses_options_out_of_range(tmp_path: Path, options: list[str]) -> None:
    sweeps = tmp_path / "sweeps"
    refused(["sweep", "model=bpr_mf", "sweep=tiny", f"sweeps_dir={sweeps}", *options], options[0], code=2)
    assert not sweeps.exists()


def test_sweep_refuses_an_unwritable_storage_before_making_its_folder(tmp_path: Path) -> None:
    blocker = tmp_path / "notes.txt"
    blocker.write_text("mine\n")
    sweeps = tmp_path / "sweeps"
    for storage, message in [
        (f"journal:{blocker}/study.log", "notes.txt is a file, not a folder"),
        (f"journal:{blocker}", "not an Optuna journal"),
        ("journal:", "name the journal file"),
        (f"sqlite:///{blocker}/study.db", "notes.txt is a file, not a folder"),
    ]:
        args = ["sweep", "model=bpr_mf", "sweep=tiny", f"sweeps_dir={sweeps}", "--storage", storage]
        refused(args, message)
        assert not sweeps.exists() and blocker.read_text() == "mine\n"


def test_sweep_refuses_a_search_space_drawing_a_value_the_schema_refuses(tmp_path: Path) -> None:
    sweeps = tmp_path / "sweeps"
    args = ["sweep", "model=bpr_mf", "sweep=tiny", f"sweeps_dir={sweeps}", "sweep.params.model.dim.choices=[8,0]"]
    refused(args, "the search space does not fit the train config: config 'train': model.dim = 0: must be >= 1")
    assert not sweeps.exists()


def test_sweep_show_refuses_a_negative_top() -> None:
    refused(["sweep", "show", "nosuch", "--top", "-1"], "--top", code=2)


@pytest.mark.parametrize(
    "args",
    [
        ["recommend", "somewhere", "--k", "0"],
        ["sweep", "run", "--trials", "0"],
        ["compare", "a", "b", "--alpha", "1"],
        ["train", "--no-such-option"],
    ],
)
def test_a_usage_error_of_the_real_cli_is_one_line(args: list[str]) -> None:
    """Typer draws usage errors as a panel; `recsys` prints one line, as for every refusal."""
    env = {"COLUMNS": "300", "NO_COLOR": "1", "TERM": "dumb", "PATH": ""}
    proc = subprocess.run([sys.executable, "-m", "recsys_cli", *args], capture_output=True, text=True, env=env)
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 2 and len(lines) == 1, proc.stderr
    assert lines[0].startswith("error: recsys ") and "Traceback" not in proc.stderr


def test_datasets_list_refuses_a_config_dir_without_data_sources(tmp_path: Path) -> None:
    refused(["datasets", "list", "--config-dir", str(tmp_path / "no" / "conf")], "no data source configs")


def test_a_config_file_that_is_not_yaml_is_one_line(tmp_path: Path) -> None:
    import shutil

    from recsys_cli.config import DEFAULT_CONF_DIR

    shutil.copytree(DEFAULT_CONF_DIR, tmp_path / "conf")
    (tmp_path / "conf" / "data" / "broken.yaml").write_text("name: [unclosed\n")
    output = refused(["datasets", "list", "--config-dir", str(tmp_path / "conf")], "broken.yaml")
    assert output.startswith("error: config 'ingest': while parsing") and output.count("\n") == 1
