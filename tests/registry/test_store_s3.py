"""The registry on an S3 server through s3fs (moto's standalone server: the one
`.ci/run` starts, or one started here outside CI): the same behaviours as on a
local folder, through the same code, where claims are `If-None-Match: *` puts,
alias changes `If-Match` puts, and `resolve` downloads into a local cache."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from recsys_cli.errors import IntegrityError
from recsys_cli.registry.package import verify_package
from recsys_cli.registry.storage import Storage
from tests.registry import test_store as same
from tests.registry.stores import Where, make_package, s3_registry, s3_server


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    yield from s3_server()


@pytest.fixture
def where(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> Where:
    return s3_registry(s3_endpoint, monkeypatch)


@pytest.fixture
def package(tmp_path: Path) -> Path:
    return make_package(tmp_path / "package")


def test_versions_are_numbered_1_2_3_with_who_made_them_and_what(where: Where, package: Path) -> None:
    same.check_versions_are_numbered_and_recorded(where, package)


def test_a_tampered_package_is_refused_naming_the_file(where: Where, package: Path) -> None:
    same.check_a_tampered_package_is_refused(where, package)


def test_two_concurrent_pushes_get_distinct_versions(where: Where, package: Path) -> None:
    same.check_concurrent_pushes_get_distinct_versions(where, package)


def test_a_push_that_dies_midway_is_never_visible_and_gc_removes_it(where: Where, package: Path) -> None:
    same.check_a_push_that_dies_midway_is_never_visible(where, package)


def test_promote_and_rollback_keep_the_history(where: Where, package: Path) -> None:
    same.check_promote_and_rollback_keep_the_history(where, package)


def test_a_concurrent_alias_change_is_never_lost(where: Where, package: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    same.check_a_concurrent_alias_change_is_never_lost(where, package, monkeypatch)


def test_delete_refuses_an_aliased_version(where: Where, package: Path) -> None:
    same.check_delete_spares_aliased_versions(where, package)


def test_gc_keeps_the_newest_unaliased_versions(where: Where, package: Path) -> None:
    same.check_gc_keeps_the_newest_unaliased_versions(where, package)


def test_resolve_downloads_a_verified_copy_into_the_cache(where: Where, package: Path) -> None:
    same.check_resolve_gives_a_verified_local_copy(where, package)
    cache = package.parent / "cache"
    folder = where.open().resolve("ease", "production", cache_dir=cache)
    assert cache in folder.parents and folder.name == "1"
    (folder / "items.parquet").write_bytes(b"damaged in the cache")
    again = where.open().resolve("ease", "production", cache_dir=cache)  # fetched again, not trusted
    assert again == folder
    verify_package(again)


def test_a_version_damaged_in_the_store_is_refused(where: Where, package: Path) -> None:
    same.check_a_version_damaged_in_the_store_is_refused(where, package)
    assert not any(p.name.startswith(".") for p in (package.parent / "cache").rglob("*"))  # no download left


def test_conditional_writes_on_the_server(where: Where) -> None:
    """The two primitives the registry's guarantees rest on, as the server answers them."""
    storage = Storage(where.uri, where.options)
    probe = storage.path("probe.json")
    assert storage.create(probe, b"first")
    assert not storage.create(probe, b"second")  # If-None-Match: * refused
    data, token = storage.read_versioned(probe)
    assert data == b"first" and token
    assert storage.replace_if(probe, b"third", token)
    assert not storage.replace_if(probe, b"fourth", token)  # If-Match on a stale ETag refused
    assert storage.read(probe) == b"third"


def test_a_stored_manifest_naming_a_file_outside_the_package_is_refused_before_download(
    where: Where, package: Path
) -> None:
    """Seals are not signatures: whoever can write the bucket can reseal a manifest
    and its record. A listed path that would land outside the cache is refused
    before anything is written."""
    import json

    from recsys_cli.registry.integrity import seal
    from recsys_cli.registry.storage import encode

    registry = where.open()
    registry.push(package)
    storage = registry.storage
    manifest_at = storage.path("ease", "versions", "1", "manifest.json")
    manifest = json.loads(storage.read(manifest_at) or b"")
    manifest["files"][0]["path"] = "../../escaped.txt"
    manifest = seal(manifest)
    storage.put(manifest_at, json.dumps(manifest).encode())
    record_at = storage.path("ease", "records", "1.json")
    record = json.loads(storage.read(record_at) or b"")
    record["package"]["manifest_sha256"] = manifest["manifest_sha256"]
    storage.put(record_at, encode(record))
    cache = package.parent / "cache"
    with pytest.raises(IntegrityError, match="lists a file outside the package"):
        registry.resolve("ease", 1, cache_dir=cache)
    assert not list(package.parent.rglob("escaped.txt"))
