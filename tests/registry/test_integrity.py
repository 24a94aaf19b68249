"""Integrity records: file entries, the manifest's own seal, and the checks that use them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from recsys_cli.errors import IntegrityError
from recsys_cli.registry.integrity import MANIFEST, SEAL, check_seal, file_entries, seal, unlisted, verify_files


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "weights.bin").write_bytes(bytes(range(256)))
    (tmp_path / "config.yaml").write_text("a: 1\n")
    (tmp_path / MANIFEST).write_text("{}")
    return tmp_path


def test_file_entries_list_every_file_but_the_manifest_with_size_and_sha256(folder: Path) -> None:
    entries = file_entries(folder)
    assert [e["path"] for e in entries] == ["config.yaml", "model/weights.bin"]
    assert entries[1]["bytes"] == 256 and len(entries[1]["sha256"]) == 64


def test_a_sealed_payload_survives_a_json_round_trip_and_refuses_any_edit(tmp_path: Path) -> None:
    sealed = seal({"kind": "run", "rows": 3, "files": [{"path": "a", "bytes": 1, "sha256": "x"}]})
    loaded = json.loads(json.dumps(sealed, indent=2))
    check_seal(loaded, tmp_path / MANIFEST)
    loaded["rows"] = 4
    with pytest.raises(IntegrityError, match="changed after it was written"):
        check_seal(loaded, tmp_path / MANIFEST)


def test_a_payload_without_a_seal_is_refused_with_the_hint(tmp_path: Path) -> None:
    with pytest.raises(IntegrityError, match=f"no {SEAL}.*re-run it"):
        check_seal({"kind": "run"}, tmp_path / MANIFEST, hint="re-run it")


def test_verify_files_checks_sizes_cheaply_and_hashes_when_full(folder: Path) -> None:
    entries = file_entries(folder)
    assert verify_files(folder, entries, full=True) == []
    weights = folder / "model" / "weights.bin"
    flipped = bytearray(weights.read_bytes())
    flipped[100] ^= 0xFF
    weights.write_bytes(bytes(flipped))
    assert verify_files(folder, entries, full=False) == []  # same size: only the full check sees it
    assert verify_files(folder, entries, full=True) == ["changed content: model/weights.bin"]
    weights.write_bytes(b"short")
    assert verify_files(folder, entries, full=False) == ["changed size: model/weights.bin"]
    weights.unlink()
    assert verify_files(folder, entries, full=False) == ["missing: model/weights.bin"]


def test_verify_files_refuses_malformed_entries_and_paths_outside_the_folder(folder: Path) -> None:
    entries = [{"path": "../etc/passwd", "bytes": 1, "sha256": "x"}, {"path": "a"}, "nonsense"]
    assert verify_files(folder, entries, full=True) == [
        "file entry 0: path outside the folder",
        "file entry 1: not a {path, bytes, sha256} record",
        "file entry 2: not a {path, bytes, sha256} record",
    ]
    assert verify_files(folder, {"not": "a list"}, full=False) == ["the manifest's file list is not a list"]


def test_unlisted_names_extra_files(folder: Path) -> None:
    entries = file_entries(folder)
    (folder / "model" / "extra.bin").write_bytes(b"1")
    assert unlisted(folder, entries) == ["model/extra.bin"]
    assert unlisted(folder, entries, pattern="*.parquet") == []
