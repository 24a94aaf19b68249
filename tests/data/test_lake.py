"""Atomic publication and recovery of lake folders."""

from __future__ import annotations

from pathlib import Path

import pytest

from recsys_cli.data.lake import link_tree, recover, staged_version


def test_staged_version_publishes_on_success(tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    with staged_version(lake, "lake") as tmp:
        (tmp / "a.txt").write_text("v1")
    assert (lake / "a.txt").read_text() == "v1"
    assert [p.name for p in tmp_path.iterdir()] == ["lake"]


def test_staged_version_leaves_old_lake_on_failure(tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    with staged_version(lake, "lake") as tmp:
        (tmp / "a.txt").write_text("v1")
    with pytest.raises(RuntimeError), staged_version(lake, "lake") as tmp:
        (tmp / "a.txt").write_text("v2")
        raise RuntimeError("boom")
    assert (lake / "a.txt").read_text() == "v1"
    assert [p.name for p in tmp_path.iterdir()] == ["lake"]


def test_recover_restores_a_lake_moved_aside_and_drops_stale_staging(tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    old = tmp_path / ".lake.old-1234abcd"
    old.mkdir()
    (old / "a.txt").write_text("v1")
    (tmp_path / ".lake.tmp-5678abcd").mkdir()
    recover(lake)
    assert (lake / "a.txt").read_text() == "v1"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["lake"]


def test_link_tree_shares_files_instead_of_copying(tmp_path: Path) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    (src / "events" / "date=2026-01-01").mkdir(parents=True)
    (src / "events" / "date=2026-01-01" / "part.parquet").write_bytes(b"x")
    (src / "manifest.json").write_text("{}")
    link_tree(src, dst, skip={"manifest.json"})
    copy = dst / "events" / "date=2026-01-01" / "part.parquet"
    assert copy.stat().st_ino == (src / "events" / "date=2026-01-01" / "part.parquet").stat().st_ino
    assert not (dst / "manifest.json").exists()
