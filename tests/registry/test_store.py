"""The registry on a local folder: numbered versions of verified packages, never a
half-written one, aliases changed atomically with their history, deletion and
gc that spare aliased versions, and `resolve` giving a verified local copy.

Each behaviour is a `check_*` function run here on a local folder and in
test_store_s3.py on an S3 server, through the same code."""

from __future__ import annotations

import json
import os
from datetime import timedelta
from pathlib import Path

import pytest

from recsys_cli.errors import IntegrityError, RegistryError
from recsys_cli.registry import store
from recsys_cli.registry.storage import Storage
from recsys_cli.registry.store import Registry, push, resolve
from tests.registry.stores import Where, concurrent_pushes, make_package, push_that_dies


@pytest.fixture
def where(tmp_path: Path) -> Where:
    return Where(str(tmp_path / "registry"))


@pytest.fixture
def package(tmp_path: Path) -> Path:
    return make_package(tmp_path / "package")


def _flip_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[0] ^= 0xFF
    path.write_bytes(bytes(data))


# -- versions -----------------------------------------------------------------------------------------------------


def check_versions_are_numbered_and_recorded(where: Where, package: Path) -> None:
    registry = where.open()
    assert registry.names() == []
    records = [push(where.uri, package, storage_options=where.options) for _ in range(3)]
    assert [r["version"] for r in records] == [1, 2, 3]
    assert registry.names() == ["ease"]
    assert [r["version"] for r in registry.versions("ease")] == [1, 2, 3]
    record = registry.record("ease", 2)
    assert record["name"] == "ease" and record["kind"] == "registry-version"
    assert record["metrics"] == {"val/ndcg@10": 0.25, "val/recall@20": 0.4}
    assert record["lineage"]["lake.sha256"] == "ab" * 32
    assert record["source_commit"] == "c0ffee"
    assert record["model"] == {"class": "recsys_cli.models.ease.EASE"}
    assert set(record["created_by"]) == {"user", "host", "recsys"}
    manifest = json.loads((package / "manifest.json").read_text())
    assert record["package"]["manifest_sha256"] == manifest["manifest_sha256"]
    assert record["package"]["files"] == 4  # three files and the manifest
    assert registry.push(package, name="ease-candidate")["version"] == 1  # numbers are per model name
    assert registry.names() == ["ease", "ease-candidate"]


def check_a_tampered_package_is_refused(where: Where, package: Path) -> None:
    _flip_byte(package / "model" / "weights.safetensors")
    with pytest.raises(IntegrityError, match=r"model/weights\.safetensors: changed content"):
        where.open().push(package)
    assert where.open().names() == []


def check_concurrent_pushes_get_distinct_versions(where: Where, package: Path) -> None:
    """Both processes chose version 1 and claimed it at the same moment: one got it,
    the other took 2, and both versions are whole."""
    assert concurrent_pushes(where, package) == [1, 2]
    registry = where.open()
    assert [r["version"] for r in registry.versions("ease")] == [1, 2]
    for version in (1, 2):
        store.verify_package(registry.resolve("ease", version, cache_dir=package.parent / "cache"))


def check_a_push_that_dies_midway_is_never_visible(where: Where, package: Path) -> None:
    assert push_that_dies(where, package) == 3
    registry = where.open()
    assert registry.names() == []
    assert registry.storage.names(registry.storage.path("ease", "claims")) == ["1.json"]
    assert registry.storage.names(registry.storage.path("ease", "versions", "1"))  # some files were sent
    with pytest.raises(RegistryError, match="no version 1"):
        registry.resolve("ease", 1)
    assert registry.push(package)["version"] == 2  # the dead push's number is never given out again
    assert registry.gc("ease", keep=5).abandoned == []  # a claim younger than a day may still be uploading
    collected = registry.gc("ease", keep=5, stale_after=timedelta(0))
    assert collected.abandoned == [1] and collected.deleted == []
    assert registry.storage.names(registry.storage.path("ease", "versions")) == ["2"]
    assert [r["version"] for r in registry.versions("ease")] == [2]


# -- aliases ------------------------------------------------------------------------------------------------------


def check_promote_and_rollback_keep_the_history(where: Where, package: Path) -> None:
    registry = where.open()
    for _ in range(3):
        registry.push(package)
    for version in (1, 2, 3):
        assert registry.promote("ease", version, "production")["version"] == version
    registry.promote("ease", 1, "staging")
    assert registry.version_of("ease", "production") == 3
    assert registry.rollback("ease", "production")["version"] == 2
    record = registry.rollback("ease", "production")
    assert record["version"] == 1
    assert [(h["action"], h["version"], h["previous"]) for h in record["history"]] == [
        ("promote", 1, None),
        ("promote", 2, 1),
        ("promote", 3, 2),
        ("rollback", 2, 3),
        ("rollback", 1, 2),
    ]
    with pytest.raises(RegistryError, match="no earlier version to roll back to"):
        registry.rollback("ease", "production")
    assert registry.version_of("ease", "staging") == 1  # each alias is its own record
    assert registry.version_of("ease", "latest") == 3
    with pytest.raises(RegistryError, match="no version 9"):
        registry.promote("ease", 9, "production")
    for bad in ("latest", "7", "../up"):
        with pytest.raises(RegistryError, match=f"alias {bad!r}"):
            registry.promote("ease", 1, bad)
    with pytest.raises(RegistryError, match="no alias 'canary' to roll back"):
        registry.rollback("ease", "canary")


def check_a_concurrent_alias_change_is_never_lost(where: Where, package: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Another process changes the alias between our read and our write: our
    conditional write fails; a promote re-reads and lands on top, a rollback stops."""
    registry = where.open()
    for _ in range(3):
        registry.push(package)
    registry.promote("ease", 1, "production")
    read = Storage.read_versioned
    other = [2]

    def interleaved(self: Storage, path: str) -> tuple[bytes | None, str | None]:
        seen = read(self, path)
        if other:
            where.open().promote("ease", other.pop(), "production")  # lands after our read
        return seen

    monkeypatch.setattr(Storage, "read_versioned", interleaved)
    record = registry.promote("ease", 3, "production")
    assert [h["version"] for h in record["history"]] == [1, 2, 3]
    other.append(1)
    with pytest.raises(RegistryError, match="changed while rolling back"):
        registry.rollback("ease", "production")
    assert registry.version_of("ease", "production") == 1  # the other change stands, ours was not applied


def check_delete_spares_aliased_versions(where: Where, package: Path) -> None:
    registry = where.open()
    for _ in range(3):
        registry.push(package)
    registry.promote("ease", 1, "production")
    registry.promote("ease", 2, "production")
    with pytest.raises(RegistryError, match="alias production points at it"):
        registry.delete("ease", 2)
    assert registry.delete("ease", 1)["version"] == 1
    assert [r["version"] for r in registry.versions("ease")] == [2, 3]
    with pytest.raises(RegistryError, match="no version 1"):
        registry.rollback("ease", "production")  # its earlier target is gone
    assert registry.version_of("ease", "production") == 2
    assert registry.push(package)["version"] == 4  # numbers are never reused


def check_gc_keeps_the_newest_unaliased_versions(where: Where, package: Path) -> None:
    registry = where.open()
    for _ in range(6):
        registry.push(package)
    registry.promote("ease", 1, "production")
    registry.promote("ease", 3, "staging")
    planned = registry.gc("ease", keep=2, dry_run=True)
    assert (planned.deleted, planned.kept, planned.aliased) == ([2, 4], [5, 6], [1, 3])
    assert len(registry.versions("ease")) == 6  # a dry run changes nothing
    assert registry.gc("ease", keep=2).deleted == [2, 4]
    assert [r["version"] for r in registry.versions("ease")] == [1, 3, 5, 6]
    assert registry.gc("ease", keep=0).deleted == [5, 6]
    assert [r["version"] for r in registry.versions("ease")] == [1, 3]


# -- resolve ------------------------------------------------------------------------------------------------------


def check_resolve_gives_a_verified_local_copy(where: Where, package: Path) -> None:
    registry = where.open()
    registry.push(package)
    registry.push(make_package(package.parent / "second", metrics={"val/ndcg@10": 0.3}))
    registry.promote("ease", 1, "production")
    cache = package.parent / "cache"
    folder = resolve(where.uri, "ease", "production", cache_dir=cache, storage_options=where.options)
    assert isinstance(folder, Path) and folder.is_dir()
    manifest = store.verify_package(folder)
    assert manifest["manifest_sha256"] == registry.record("ease", 1)["package"]["manifest_sha256"]
    assert (folder / "model" / "weights.safetensors").read_bytes() == bytes(range(64))
    latest = registry.resolve("ease", "latest", cache_dir=cache)
    assert store.verify_package(latest)["metrics"] == {"val/ndcg@10": 0.3}
    with pytest.raises(RegistryError, match="no version or alias 'canary'"):
        registry.resolve("ease", "canary", cache_dir=cache)


def check_a_version_damaged_in_the_store_is_refused(where: Where, package: Path) -> None:
    registry = where.open()
    registry.push(package)
    fs = registry.storage
    stored = fs.path("ease", "versions", "1", "items.parquet")
    fs.put(stored, b"PAR1 edited PAR1")
    with pytest.raises(IntegrityError, match=r"items\.parquet: changed"):
        registry.resolve("ease", 1, cache_dir=package.parent / "cache")
    record = fs.path("ease", "records", "1.json")
    fs.put(record, fs.read(record).replace(b"0.25", b"0.95"))  # type: ignore[union-attr]
    with pytest.raises(IntegrityError, match=r"records/1\.json: the manifest was changed"):
        registry.record("ease", 1)


# -- on a local folder --------------------------------------------------------------------------------------------


def test_versions_are_numbered_1_2_3_with_who_made_them_and_what(where: Where, package: Path) -> None:
    check_versions_are_numbered_and_recorded(where, package)


def test_a_tampered_package_is_refused_naming_the_file(where: Where, package: Path) -> None:
    check_a_tampered_package_is_refused(where, package)


def test_two_concurrent_pushes_get_distinct_versions(where: Where, package: Path) -> None:
    check_concurrent_pushes_get_distinct_versions(where, package)


def test_a_file_being_created_is_absent_to_readers_never_empty(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Between the bytes being written and the name appearing, a reader finds nothing
    at the path and no entry in the folder (a half-written claim or marker read as
    a damaged record); afterwards, the whole object."""
    storage = Storage(str(tmp_path / "store"))
    path = storage.path("claims", "1.json")
    seen: list[tuple[bytes | None, list[str]]] = []
    link = os.link

    def watched(source: str, target: str) -> None:
        seen.append((storage.read(path), storage.names(storage.path("claims"))))
        link(source, target)

    monkeypatch.setattr(os, "link", watched)
    assert storage.create(path, b'{"version": 1}') is True
    assert seen == [(None, [])]
    assert storage.read(path) == b'{"version": 1}' and storage.names(storage.path("claims")) == ["1.json"]
    assert storage.create(path, b'{"version": 2}') is False  # taken: the first stays, no file is left behind
    assert storage.read(path) == b'{"version": 1}'
    assert [p.name for p in (tmp_path / "store" / "claims").iterdir()] == ["1.json"]


def test_a_first_push_beside_another_first_push_sees_no_registry_or_a_whole_one(
    where: Where, package: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two first pushes into one empty folder: while one is creating the registry's
    marker, the other finds an empty folder (its own marker wins) or the whole
    marker, never files without a marker or an unreadable one. Both versions land."""
    link, raced = os.link, []

    def racing(source: str, target: str) -> None:
        if target.endswith("registry.json") and not raced:
            raced.append(0)
            raced.append(where.open().push(package)["version"])  # the other push, all the way through
        link(source, target)

    monkeypatch.setattr(os, "link", racing)
    assert where.open().push(package)["version"] == 2
    assert raced == [0, 1] and [r["version"] for r in where.open().versions("ease")] == [1, 2]


def test_a_push_that_dies_midway_is_never_visible_and_gc_removes_it(where: Where, package: Path) -> None:
    check_a_push_that_dies_midway_is_never_visible(where, package)


def test_promote_and_rollback_keep_the_history(where: Where, package: Path) -> None:
    check_promote_and_rollback_keep_the_history(where, package)


def test_a_concurrent_alias_change_is_never_lost(where: Where, package: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    check_a_concurrent_alias_change_is_never_lost(where, package, monkeypatch)


def test_delete_refuses_an_aliased_version(where: Where, package: Path) -> None:
    check_delete_spares_aliased_versions(where, package)


def test_gc_keeps_the_newest_unaliased_versions(where: Where, package: Path) -> None:
    check_gc_keeps_the_newest_unaliased_versions(where, package)


def test_resolve_gives_the_version_folder_verified(where: Where, package: Path) -> None:
    check_resolve_gives_a_verified_local_copy(where, package)
    folder = where.open().resolve("ease", "production")
    assert folder == Path(where.uri) / "ease" / "versions" / "1"  # a local registry is read in place


def test_a_version_damaged_in_the_store_is_refused(where: Where, package: Path) -> None:
    check_a_version_damaged_in_the_store_is_refused(where, package)


def test_a_file_changed_while_pushing_is_never_published(
    where: Where, package: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    verify = store.verify_package

    def then_edited(folder: Path) -> dict[str, object]:
        manifest = verify(folder)
        _flip_byte(package / "items.parquet")  # after the check, before the upload
        return manifest

    monkeypatch.setattr(store, "verify_package", then_edited)
    with pytest.raises(IntegrityError, match=r"items\.parquet: changed while it was being pushed"):
        Registry(where.uri).push(package)
    monkeypatch.undo()
    registry = Registry(where.uri)
    assert registry.names() == []
    assert registry.storage.names(registry.storage.path("ease", "versions")) == []  # its files are gone


def test_a_folder_that_is_not_a_registry_is_never_written(tmp_path: Path, package: Path) -> None:
    other = tmp_path / "somewhere"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    with pytest.raises(RegistryError, match="no registry.json, so it is not a recsys registry"):
        Registry(str(other)).push(package)
    assert sorted(p.name for p in other.iterdir()) == ["notes.txt"]
    with pytest.raises(RegistryError, match="no registry here"):
        Registry(str(other)).gc("ease", keep=0)


def test_gc_touches_only_what_the_registry_numbered(where: Where, package: Path) -> None:
    registry = where.open()
    registry.push(package)
    registry.push(package)
    versions = Path(where.uri) / "ease" / "versions"
    (versions / "notes").mkdir()
    (versions / "notes" / "keep.txt").write_text("not a version")
    (versions / "7").mkdir()
    (versions / "7" / "keep.txt").write_text("never claimed")
    collected = registry.gc("ease", keep=0, stale_after=timedelta(0))
    assert collected.deleted == [1, 2] and collected.abandoned == []
    assert sorted(p.name for p in versions.iterdir()) == ["7", "notes"]


def test_names_and_unknown_models_are_refused_in_one_line(where: Where, package: Path) -> None:
    registry = where.open()
    with pytest.raises(RegistryError, match="model name '../x'"):
        registry.push(package, name="../x")
    registry.push(package)
    with pytest.raises(RegistryError, match="no version 1 in"):
        registry.record("other", 1)


def test_an_unsupported_store_is_refused() -> None:
    from recsys_cli.errors import ConfigError

    with pytest.raises(ConfigError, match="memory:// has no conditional write"):
        Registry("memory://registry")
