"""A damaged lake, split or feature set is refused by every command that reads it,
with one line naming the folder and the first damaged file, and nothing written;
`recsys ingest` repairs a damaged lake; `--append` refuses one."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from recsys_cli.cli import app

runner = CliRunner()
SHOP = "shop"  # relative, so a copied shop has the same config (and ingest fingerprint) as the original
LAKE = Path(SHOP, "lake", "synth")
SPLIT = Path(SHOP, "splits", "synth", "global_temporal-engagement")
FEATURES = Path(SHOP, "features", "synth", "global_temporal-engagement", "default")


def invoke(*args: str) -> Result:
    return runner.invoke(app, [*args, f"paths.data_dir={SHOP}"])


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small shop ingested and split once; each test damages its own copy."""
    root = tmp_path_factory.mktemp("integrity")
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(root)
        for args in (
            ["datasets", "synth", "data.generator.n_events=3000", "data.generator.n_days=40"],
            ["ingest"],
            ["split"],
        ):
            result = invoke(*args)
            assert result.exit_code == 0, result.output
    return root


@pytest.fixture
def shop(pristine: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    shutil.copytree(pristine / SHOP, tmp_path / SHOP)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _parts() -> list[Path]:
    return sorted((LAKE / "events").rglob("*.parquet"))


def _rm_day() -> str:
    victim = _parts()[3]
    shutil.rmtree(victim.parent)
    return f"missing: {victim.relative_to(LAKE).as_posix()}"


def _duplicate_part() -> str:
    copy = _parts()[5].with_name("part-00002.parquet")
    shutil.copy(_parts()[5], copy)
    return f"unlisted: {copy.relative_to(LAKE).as_posix()}"


def _flip_byte() -> str:
    victim = _parts()[7]
    data = bytearray(victim.read_bytes())
    data[-5] ^= 0xFF  # the footer's length: the size stays, the file no longer decodes
    victim.write_bytes(bytes(data))
    return f"changed content: {victim.relative_to(LAKE).as_posix()}"


def _truncate() -> str:
    victim = _parts()[0]
    victim.write_bytes(victim.read_bytes()[:-100])
    return f"changed size: {victim.relative_to(LAKE).as_posix()}"


def _edit_rows() -> str:
    manifest = json.loads((LAKE / "manifest.json").read_text())
    manifest["rows"]["events"] += 1
    (LAKE / "manifest.json").write_text(json.dumps(manifest, indent=2))
    return "manifest.json was edited after it was written"


DAMAGES: dict[str, Callable[[], str]] = {
    "missing day": _rm_day,
    "duplicated part file": _duplicate_part,
    "flipped byte, same size": _flip_byte,
    "truncated file": _truncate,
    "edited row count": _edit_rows,
}


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _refused(result: Result, *expected: str) -> None:
    assert result.exit_code == 1, result.output
    lines = [line for line in result.output.strip().splitlines() if "━" not in line]  # the progress bar's last frame
    assert len(lines) == 1 and lines[0].startswith("error:"), result.output
    assert "Traceback" not in result.output
    for text in expected:
        assert text in lines[0], lines[0]


@pytest.mark.parametrize("damage", DAMAGES, ids=list(DAMAGES))
def test_a_damaged_lake_is_refused_downstream_and_repaired_by_ingest(shop: Path, damage: str) -> None:
    original = json.loads((LAKE / "manifest.json").read_text())
    problem = DAMAGES[damage]()

    _refused(invoke("split", "split=leave_last_n"), f"{LAKE}: damaged lake: {problem}")
    assert not (SPLIT.parent / "leave_last_n-engagement").exists()
    _refused(invoke("features"), f"{LAKE}: damaged lake: {problem}")
    assert not FEATURES.exists()
    described = runner.invoke(app, ["lake", "describe", str(LAKE), "--verify"])
    assert described.exit_code == 1 and problem in described.output

    damaged = _snapshot(LAKE)
    _refused(invoke("ingest", "--append"), "damaged lake", "re-ingest without --append")
    assert _snapshot(LAKE) == damaged

    repaired = invoke("ingest")
    assert repaired.exit_code == 0 and "repaired:" in repaired.output, repaired.output
    rebuilt = json.loads((LAKE / "manifest.json").read_text())
    assert rebuilt["outputs"] == original["outputs"] and rebuilt["rows"] == original["rows"]
    assert runner.invoke(app, ["lake", "describe", str(LAKE), "--verify", "--brief"]).exit_code == 0
    assert "no-op" in invoke("ingest").output


def test_ingest_rehashes_the_lake_before_calling_it_up_to_date(shop: Path) -> None:
    victim = _parts()[2]
    data = bytearray(victim.read_bytes())
    data[len(data) // 2] ^= 0x01  # inside the data: it may still decode, to other values
    victim.write_bytes(bytes(data))
    repaired = invoke("ingest")
    assert repaired.exit_code == 0 and f"changed content: {victim.relative_to(LAKE).as_posix()}" in repaired.output
    assert runner.invoke(app, ["lake", "describe", str(LAKE), "--verify", "--brief"]).exit_code == 0


def test_split_rehashes_the_lake_by_default(shop: Path) -> None:
    victim = _parts()[2]
    data = bytearray(victim.read_bytes())
    data[len(data) // 2] ^= 0x01
    victim.write_bytes(bytes(data))
    _refused(
        invoke("split", "split=leave_last_n"),
        f"{LAKE}: damaged lake: changed content: {victim.relative_to(LAKE).as_posix()}",
    )
    assert not (SPLIT.parent / "leave_last_n-engagement").exists()


def test_a_damaged_split_or_feature_set_is_refused_by_the_next_command(shop: Path) -> None:
    assert invoke("features").exit_code == 0
    assert invoke("train").exit_code == 0
    victim = FEATURES / "fold-0" / "val" / "interactions.parquet"  # what train (part=val) reads
    runs = sorted(Path("runs").rglob("*"))
    data = bytearray(victim.read_bytes())
    data[-5] ^= 0xFF  # same size: only decoding finds it
    victim.write_bytes(bytes(data))
    rel = victim.relative_to(FEATURES).as_posix()
    _refused(invoke("train"), f"{FEATURES}: damaged features: changed content: {rel}")
    assert sorted(Path("runs").rglob("*")) == runs  # no run folder left behind
    victim.unlink()
    _refused(invoke("train"), f"{FEATURES}: damaged features: missing: {victim.relative_to(FEATURES).as_posix()}")
    targets = SPLIT / "fold-0" / "test_targets.parquet"
    targets.write_bytes(targets.read_bytes() + b"\0")
    features_before = _snapshot(FEATURES)
    _refused(invoke("features"), f"{SPLIT}: damaged split: changed size: fold-0/test_targets.parquet")
    assert _snapshot(FEATURES) == features_before


def test_a_legacy_lake_is_read_and_described_as_unsealed(shop: Path) -> None:
    manifest = json.loads((LAKE / "manifest.json").read_text())
    del manifest["manifest_sha256"], manifest["kind"]  # as ingest wrote them before manifests were sealed
    (LAKE / "manifest.json").write_text(json.dumps(manifest | {"format_version": 1}))
    described = runner.invoke(app, ["lake", "describe", str(LAKE), "--brief"])
    assert described.exit_code == 0 and "unsealed manifest" in described.output
    assert invoke("split", "split=leave_last_n").exit_code == 0


def test_splitting_a_lake_without_events_is_one_line(tmp_path: Path) -> None:
    raw = tmp_path / "raw" / "generic"
    raw.mkdir(parents=True)
    (raw / "events.csv").write_text("user_id,item_id,event_type,ts\n")  # header only
    args = ["data=generic", f"paths.data_dir={tmp_path}"]
    assert runner.invoke(app, ["ingest", *args]).exit_code == 0
    _refused(runner.invoke(app, ["split", *args]), "the lake holds no events")
    assert not (tmp_path / "splits").exists()
