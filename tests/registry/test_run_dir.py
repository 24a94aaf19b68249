"""Run folders appear whole or not at all, and are only loaded while every file and
every data folder they were trained on is as it was."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from recsys_cli.errors import ConfigError, IntegrityError
from recsys_cli.registry import lineage
from recsys_cli.registry.integrity import MANIFEST, canonical_digest
from recsys_cli.registry.run_dir import CONFIG, MODEL, PARTIAL, load_run_config, new_run, open_run, publish_run


@pytest.fixture
def data(tmp_path: Path) -> Path:
    """A lake, split and features folder, each with a manifest."""
    for name in ("lake", "split", "features"):
        (tmp_path / "data" / name).mkdir(parents=True)
        (tmp_path / "data" / name / MANIFEST).write_text(json.dumps({"name": name}))
    return tmp_path / "data"


@pytest.fixture
def cfg(data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> OmegaConf:
    monkeypatch.chdir(tmp_path)
    relative = {"lake_dir": "data/lake", "split_dir": "data/split", "features_dir": "data/features"}
    return lineage.pinned(OmegaConf.create({**relative, "fold": "fold-0", "part": "val"}))


def shell_latest(root: Path) -> str:
    """What `make demo` takes as the latest run: `ls -d runs/ease/* | tail -1`."""
    out = subprocess.run(
        "ls -d runs/ease/* 2>/dev/null | tail -1", shell=True, cwd=root, capture_output=True, text=True
    )
    return out.stdout.strip()


def staged(tmp_path: Path, cfg: OmegaConf) -> Path:
    folder = new_run(tmp_path / "runs", "ease", cfg)
    (folder / MODEL).mkdir()
    (folder / MODEL / "weights.safetensors").write_bytes(bytes(range(200)))
    (folder / "metrics.json").write_text("{}")
    return folder


def test_a_run_is_hidden_until_it_is_published_whole(tmp_path: Path, cfg: OmegaConf) -> None:
    folder = staged(tmp_path, cfg)
    assert folder.name.startswith(".") and folder.name.endswith(PARTIAL)
    assert shell_latest(tmp_path) == ""
    with pytest.raises(IntegrityError, match="an unfinished run"):
        open_run(folder)
    run = publish_run(folder, lineage.record(cfg))
    assert shell_latest(tmp_path) == f"runs/ease/{run.name}" and not folder.exists()
    manifest = json.loads((run / MANIFEST).read_text())
    assert manifest["kind"] == "run" and manifest["manifest_sha256"] == canonical_digest(manifest)
    assert {e["path"] for e in manifest["files"]} == {CONFIG, "metrics.json", "model/weights.safetensors"}
    assert open_run(run).config.fold == "fold-0"


def test_the_config_holds_absolute_data_folders(tmp_path: Path, cfg: OmegaConf) -> None:
    run = publish_run(staged(tmp_path, cfg), lineage.record(cfg))
    saved = OmegaConf.load(run / CONFIG)
    assert saved.split_dir == str(tmp_path / "data" / "split") and Path(saved.lake_dir).is_absolute()


def test_a_flipped_byte_in_a_weight_file_is_refused(tmp_path: Path, cfg: OmegaConf) -> None:
    run = publish_run(staged(tmp_path, cfg), lineage.record(cfg))
    weights = run / MODEL / "weights.safetensors"
    flipped = bytearray(weights.read_bytes())
    flipped[150] ^= 1
    weights.write_bytes(bytes(flipped))
    with pytest.raises(IntegrityError, match="changed content: model/weights.safetensors.*changed after training"):
        load_run_config(run)


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda run: (run / MANIFEST).unlink(), "no manifest.json.*incomplete or was written by an older version"),
        (lambda run: (run / "metrics.json").unlink(), "missing: metrics.json"),
        (lambda run: (run / MODEL / "extra.bin").write_bytes(b"x"), "added: model/extra.bin"),
        (lambda run: (run / MANIFEST).write_text("{"), "manifest.json: not readable JSON"),
        (lambda run: (run / MANIFEST).write_text('{"kind": "lake"}'), "not a run manifest"),
        (lambda run: (run / CONFIG).write_text("fold: fold-1\n"), "changed size: config.yaml"),
    ],
)
def test_damage_is_one_error(tmp_path: Path, cfg: OmegaConf, damage: object, message: str) -> None:
    run = publish_run(staged(tmp_path, cfg), lineage.record(cfg))
    damage(run)  # type: ignore[operator]
    with pytest.raises(IntegrityError, match=message):
        open_run(run)


def test_an_edited_manifest_is_refused_by_its_seal(tmp_path: Path, cfg: OmegaConf) -> None:
    run = publish_run(staged(tmp_path, cfg), lineage.record(cfg))
    manifest = json.loads((run / MANIFEST).read_text())
    manifest["files"] = [e for e in manifest["files"] if e["path"] != "metrics.json"]
    (run / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(IntegrityError, match="manifest was changed after it was written"):
        open_run(run)


def test_a_folder_that_is_not_a_run_says_so(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such run folder"):
        open_run(tmp_path / "nope")
    with pytest.raises(ConfigError, match="not a run folder"):
        open_run(tmp_path)


def test_remade_or_moved_data_is_refused_but_the_files_may_still_be_read(
    tmp_path: Path, cfg: OmegaConf, data: Path
) -> None:
    run = publish_run(staged(tmp_path, cfg), lineage.record(cfg))
    (data / "split" / MANIFEST).write_text(json.dumps({"name": "split", "remade": True}))
    with pytest.raises(IntegrityError, match=r"the split it was trained on \(.*\) was remade since"):
        open_run(run)
    assert open_run(run, check_data=False).split_digest is not None  # a users file needs no split
    (data / "split" / MANIFEST).write_text(json.dumps({"name": "split"}))
    open_run(run)
    (data / "lake").rename(data / "lake-moved")
    with pytest.raises(IntegrityError, match="the lake it was trained on .* is gone"):
        open_run(run)


def test_a_config_interpolation_is_refused_even_under_a_recomputed_manifest(tmp_path: Path, cfg: OmegaConf) -> None:
    folder = staged(tmp_path, cfg)
    (folder / CONFIG).write_text("fold: ${oc.env:RECSYS_PII_KEY}\n")  # would copy the key into outputs
    run = publish_run(folder, {})
    with pytest.raises(IntegrityError, match="interpolation, which train never writes"):
        open_run(run)
