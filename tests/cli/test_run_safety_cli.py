"""Run folders through the real commands: an edited model.json never runs code, a
damaged or unfinished run is one line, and a run only ever scores the data it was
trained on, wherever the command runs from."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load_file, save_file
from typer.testing import CliRunner

from recsys_cli.cli import app
from recsys_cli.evaluation.significance import SPLIT_DIGEST, ComparisonError, check_same_window
from recsys_cli.registry.integrity import MANIFEST
from recsys_cli.registry.run_dir import seal_run

runner = CliRunner()
WIDE = {"COLUMNS": "250"}
QUICK_EVAL = ["eval.ks=[5,10]", "eval.bootstrap.resamples=50"]
QUICK_ABTEST = ["abtest.resamples=20"]


@pytest.fixture(scope="module")
def runs(prepared: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A popularity and an EASE run of the same window."""
    root = tmp_path_factory.mktemp("runs")
    out = {}
    for model, folder in (("popularity", "popularity"), ("ease", "ease")):
        args = ["train", f"paths.data_dir={prepared}", f"runs_dir={root}", f"model={model}"]
        result = runner.invoke(app, args, catch_exceptions=False)
        assert result.exit_code == 0, result.output
        (out[model],) = (root / folder).iterdir()
    return out


@pytest.fixture
def ease(runs: dict[str, Path], tmp_path: Path) -> Path:
    """A copy of the EASE run to damage (in a runs/<model>/<stamp> layout)."""
    return Path(shutil.copytree(runs["ease"], tmp_path / "runs" / "ease" / runs["ease"].name))


def reseal(run: Path) -> None:
    """Recompute the manifest after an edit, as someone covering their tracks would:
    what is left to refuse the run is the check of its content."""
    lineage = json.loads((run / MANIFEST).read_text())["lineage"]
    (run / MANIFEST).unlink()
    seal_run(run, lineage)


def one_line_error(*args: str) -> str:
    result = runner.invoke(app, list(args), env=WIDE)
    lines = [line for line in result.output.strip().splitlines() if "━" not in line]  # progress bars
    assert result.exit_code == 1 and len(lines) == 1 and lines[0].startswith("error:"), result.output
    return lines[0]


def commands(run: Path, control: Path, tmp_path: Path) -> list[list[str]]:
    """recommend, evaluate and abtest on `run`, each writing outside it."""
    return [
        ["recommend", str(run), "--k", "3", "--out", str(tmp_path / "recs.parquet")],
        ["evaluate", str(run), *QUICK_EVAL, f"out_dir={tmp_path / 'eval'}"],
        ["abtest", str(control), str(run), "--out", str(tmp_path / "ab"), *QUICK_ABTEST],
    ]


@pytest.mark.parametrize("resealed", [False, True], ids=["manifest-left", "manifest-recomputed"])
def test_model_json_naming_os_system_never_runs(
    runs: dict[str, Path], ease: Path, tmp_path: Path, resealed: bool
) -> None:
    marker = tmp_path / "pwned"
    meta = json.loads((ease / "model" / "model.json").read_text())
    meta |= {"class": "os.system", "params": {"command": f"touch {marker}"}}
    (ease / "model" / "model.json").write_text(json.dumps(meta))
    if resealed:
        reseal(ease)
    expected = "is not a recsys model class" if resealed else "model/model.json"
    for args in commands(ease, runs["popularity"], tmp_path):
        assert expected in one_line_error(*args)
        assert not marker.exists()


def test_a_ranker_generator_or_a_composed_target_naming_os_system_never_runs(prepared: Path, tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    base = ["train", f"paths.data_dir={prepared}", f"runs_dir={tmp_path / 'runs'}"]
    one_line_error(*base, "model._target_=os.system", f"+model.command='touch {marker}'")
    one_line_error(
        *base, "model=ranker", "model.generators.ease._target_=os.system", f"+model.generators.ease.command='{marker}'"
    )
    assert not marker.exists() and not (tmp_path / "runs").exists()


def test_a_flipped_byte_in_a_weight_tensor_is_refused(runs: dict[str, Path], ease: Path, tmp_path: Path) -> None:
    weights = ease / "model" / "weights.safetensors"
    raw = bytearray(weights.read_bytes())
    raw[-5] ^= 0x40  # inside the last tensor's data, not its header
    weights.write_bytes(bytes(raw))
    for args in commands(ease, runs["popularity"], tmp_path):
        assert "changed content: model/weights.safetensors" in one_line_error(*args)


def test_corrupt_sparse_indices_are_one_line_never_a_segfault(ease: Path, tmp_path: Path) -> None:
    weights = ease / "model" / "weights.safetensors"
    tensors = dict(load_file(str(weights)))
    tensors["base.seen_indices"] = tensors["base.seen_indices"] + np.int64(10**9)
    tensors["model.x_indices"] = tensors["model.x_indices"] + np.int64(10**9)
    save_file(tensors, str(weights))
    reseal(ease)
    done = subprocess.run(
        [sys.executable, "-m", "recsys_cli", "recommend", str(ease), "--k", "3", "--out", str(tmp_path / "r.parquet")],
        capture_output=True,
        text=True,
        env={**os.environ, **WIDE},
    )
    assert done.returncode == 1, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "holds columns outside" in lines[0] and "Traceback" not in done.stderr


def test_a_run_without_a_manifest_is_refused_and_says_how_to_fix_it(runs: dict[str, Path], ease: Path) -> None:
    (ease / MANIFEST).unlink()
    line = one_line_error("evaluate", str(ease))
    assert "incomplete or was written by an older version" in line and "recsys train" in line
    line = one_line_error("compare", str(runs["popularity"]), str(ease))
    assert "no manifest.json" in line


def test_a_killed_training_leaves_no_visible_run(prepared: Path, tmp_path: Path) -> None:
    """SIGKILL in the middle of the fit: `ls -d runs/ease/* | tail -1` finds nothing."""
    script = (
        "import os, signal, sys\n"
        "from recsys_cli.config import compose\n"
        "from recsys_cli.models.ease import EASE\n"
        "from recsys_cli.tasks import train\n"
        "EASE._fit = lambda *a, **k: os.kill(os.getpid(), signal.SIGKILL)\n"
        "train.run(compose('train', sys.argv[1:]))\n"
    )
    args = [f"paths.data_dir={prepared}", f"runs_dir={tmp_path / 'runs'}", "model=ease"]
    done = subprocess.run([sys.executable, "-c", script, *args], capture_output=True, text=True)
    assert done.returncode == -9
    listed = subprocess.run("ls -d runs/ease/* | tail -1", shell=True, cwd=tmp_path, capture_output=True, text=True)
    assert listed.stdout.strip() == ""
    (partial,) = (tmp_path / "runs" / "ease").iterdir()
    assert partial.name.startswith(".") and "an unfinished run" in one_line_error("evaluate", str(partial))


@pytest.fixture
def elsewhere(tmp_path: Path) -> Iterator[Path]:
    """Another project's folder, with a split of its own at the same relative path."""
    other = tmp_path / "other-project"
    (other / "data" / "splits").mkdir(parents=True)
    cwd = Path.cwd()
    os.chdir(other)
    yield other
    os.chdir(cwd)


def test_a_run_scores_its_own_data_from_any_folder(runs: dict[str, Path], prepared: Path, elsewhere: Path) -> None:
    """From another project's folder, evaluate still reads the run's own split: on
    the users train scored, it reports exactly train's NDCG."""
    config = (runs["ease"] / "config.yaml").read_text()
    assert f"split_dir: {prepared}" in config and f"lake_dir: {prepared}" in config  # absolute
    args = ["evaluate", str(runs["ease"]), *QUICK_EVAL, "eval.users=warm", f"out_dir={elsewhere / 'e'}"]
    result = runner.invoke(app, args, env=WIDE)
    assert result.exit_code == 0, result.output
    trained = json.loads((runs["ease"] / "metrics.json").read_text())
    scored = json.loads((elsewhere / "e" / "metrics.json").read_text())
    assert scored["headline"]["ndcg@10"]["value"] == pytest.approx(trained["val/ndcg@10"])


@pytest.fixture
def remade_split(runs: dict[str, Path]) -> Iterator[Path]:
    """The runs' split manifest changed in place (a split remade), restored afterwards."""
    config = (runs["ease"] / "config.yaml").read_text()
    split = Path(next(line.split(": ", 1)[1] for line in config.splitlines() if line.startswith("split_dir:")))
    manifest = split / MANIFEST
    before = manifest.read_bytes()
    manifest.write_bytes(before.replace(b"{", b'{"remade": true, ', 1))
    yield split
    manifest.write_bytes(before)


def test_runs_refuse_a_split_remade_since_training(runs: dict[str, Path], remade_split: Path, tmp_path: Path) -> None:
    for args in [*commands(runs["ease"], runs["popularity"], tmp_path), ["compare", *map(str, runs.values())]]:
        line = one_line_error(*args)
        assert "the split it was trained on" in line and "was remade since" in line


def test_runs_of_different_splits_never_pair() -> None:
    """Two runs whose split manifests differ are different windows, even in one folder."""
    windows = [{"part": "val", SPLIT_DIGEST: "1" * 64}, {"part": "val", SPLIT_DIGEST: "2" * 64}]
    with pytest.raises(ComparisonError, match=f"different windows: {SPLIT_DIGEST}"):
        check_same_window(["a", "b"], windows)
