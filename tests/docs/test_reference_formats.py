"""The formats reference (scripts/docs_formats.py) lists a manifest's keys from the
function that writes it: the keys it lists are the keys a written manifest has."""

from __future__ import annotations

import json
from pathlib import Path

from tests.docs import load_script

docs_formats = load_script("docs_formats")


def writer(function: str) -> object:
    return next(w for w in docs_formats.WRITERS if w.function == function)


def test_a_run_manifest_has_exactly_the_listed_keys(tmp_path: Path) -> None:
    from recsys_cli.registry.run_dir import seal_run

    (tmp_path / "metrics.json").write_text("{}")
    seal_run(tmp_path, {"lake": "digest"})
    written = set(json.loads((tmp_path / "manifest.json").read_text()))
    listed = {key for key, _ in docs_formats.rows(writer("seal_run"))}
    assert written == listed | {"manifest_sha256"}  # the seal, added by integrity.seal


def test_a_package_manifest_has_the_listed_keys_and_its_payload(tmp_path: Path) -> None:
    from recsys_cli.registry.package import seal_package

    (tmp_path / "items.parquet").write_bytes(b"x")
    written = set(seal_package(tmp_path, {"name": "shop-ease"}))
    listed = {key for key, _ in docs_formats.rows(writer("seal_package"))}
    assert "**payload" in listed
    assert written == (listed - {"**payload"}) | {"name", "manifest_sha256"}


def test_the_lake_manifest_keys_and_what_fills_them() -> None:
    rows = dict(docs_formats.rows(writer("build_manifest")))
    assert rows["kind"] == "LAKE" and rows["outputs"] == "file_digests(lake)"
    assert {"format_version", "inputs", "pii", "time_range", "schema"} <= set(rows)


def test_the_page_has_a_section_per_writer() -> None:
    page = docs_formats.page()
    for w in docs_formats.WRITERS:
        assert f"## {w.title}" in page and f"`{w.module}.{w.function}`" in page
