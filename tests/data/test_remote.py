"""Lake, split and feature folders on an S3 server (`paths.data_dir=s3://...`, moto's
standalone server: the one `.ci/run` starts, or one started here outside CI): the
same tables as on a local folder, a cache reused while the stored folder is
unchanged, stored folders verified before they are trusted, a manifest as the
commit marker, only our own folders replaced, and one writer at a time."""

from __future__ import annotations

import json
import shutil
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from omegaconf import DictConfig
from polars.testing import assert_frame_equal
from typer.testing import CliRunner

from recsys_cli.cli import app
from recsys_cli.config import compose
from recsys_cli.data.lake import write_sealed
from recsys_cli.data.remote import RemoteFolder, RemoteStoreError
from recsys_cli.data.remote.mirror import mirror_path
from recsys_cli.errors import ConfigError, IntegrityError, LakeError, OutputError
from recsys_cli.registry.integrity import MANIFEST
from recsys_cli.registry.outputs import KIND, LOCK_TIMEOUT_ENV, SPLIT
from recsys_cli.tasks import features, ingest, split, train
from tests.s3 import free_port, new_bucket, s3_server

STEPS = (("ingest", ingest), ("split", split), ("features", features))
FOLDERS = ("lake_dir", "split_dir", "features_dir")


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    yield from s3_server()


def small_shop(root: Path) -> Path:
    """The raw files of a small synthetic shop (1,500 events over 30 days), local."""
    args = ["datasets", "synth", "data.generator.n_events=1500", "data.generator.n_days=30", f"paths.data_dir={root}"]
    result = CliRunner().invoke(app, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return root / "raw"


@pytest.fixture(scope="module")
def raw(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return small_shop(tmp_path_factory.mktemp("shop"))


@dataclass
class Store:
    """A data_dir in a fresh bucket, and the overrides that point a command at it."""

    url: str
    endpoint: str
    raw: Path
    cache: Path

    def overrides(self, *more: str) -> list[str]:
        return [
            f"paths.data_dir={self.url}",
            f"paths.raw_dir={self.raw}",
            f"paths.cache_dir={self.cache}",
            f"+paths.storage_options.endpoint_url={self.endpoint}",
            *more,
        ]

    def compose(self, name: str, *more: str) -> DictConfig:
        return compose(name, self.overrides(*more))

    def folder(self, cfg: DictConfig, key: str) -> RemoteFolder:
        return RemoteFolder(str(cfg[key]), {"endpoint_url": self.endpoint})


@pytest.fixture
def store(s3_endpoint: str, raw: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Store:
    bucket = new_bucket(s3_endpoint, monkeypatch, "data")
    return Store(f"s3://{bucket}/data", s3_endpoint, raw, tmp_path / "cache")


def chain(overrides: list[str]) -> DictConfig:
    """ingest, split and features with `overrides`; the features config."""
    for name, task in STEPS:
        task.run(compose(name, overrides))
    return compose("features", overrides)


def stored_tables(folder: RemoteFolder) -> dict[str, pl.DataFrame]:
    """Every Parquet file the stored manifest lists, read from the store itself."""
    manifest = json.loads(folder.manifest_bytes() or b"{}")
    fs = folder.storage.fs
    out = {}
    for entry in manifest["outputs"]:
        if entry["path"].endswith(".parquet"):
            with fs.open(folder.storage.path(entry["path"]), "rb") as fh:
                out[entry["path"]] = pl.read_parquet(fh)
    return out


def local_tables(folder: Path) -> dict[str, pl.DataFrame]:
    return {p.relative_to(folder).as_posix(): pl.read_parquet(p) for p in sorted(folder.rglob("*.parquet"))}


def parquet_key(folder: RemoteFolder) -> str:
    manifest = json.loads(folder.manifest_bytes() or b"{}")
    return next(e["path"] for e in manifest["outputs"] if e["path"].endswith(".parquet"))


# -- the chain ----------------------------------------------------------------------------------------------------


def test_the_chain_on_s3_writes_the_tables_a_local_data_dir_gets(store: Store, tmp_path: Path) -> None:
    local = chain([f"paths.data_dir={tmp_path / 'local'}", f"paths.raw_dir={store.raw}"])
    remote = chain(store.overrides())
    for key in FOLDERS:
        stored, written = store.folder(remote, key), Path(str(local[key]))
        tables = stored_tables(stored)
        assert tables.keys() == local_tables(written).keys() and tables
        for rel, table in local_tables(written).items():  # sums of floats may differ in the last bits, run to run
            assert_frame_equal(tables[rel], table, check_exact=False, rel_tol=1e-9, abs_tol=0)
        manifest = json.loads(stored.manifest_bytes() or b"{}")
        mine = json.loads((written / MANIFEST).read_text())
        assert [e["path"] for e in manifest["outputs"]] == [e["path"] for e in mine["outputs"]]
        assert manifest[KIND] == mine[KIND]
        assert manifest["config"][key] == str(remote[key])  # the URL, never the cache's path
        assert "cache_dir" not in manifest["config"]["paths"]
    objects = set(store.folder(remote, "lake_dir").objects())
    assert MANIFEST in objects and not any(name.startswith(".recsys") for name in objects)


def test_train_reads_the_features_from_s3_and_scores_as_on_a_local_folder(store: Store, tmp_path: Path) -> None:
    local = [f"paths.data_dir={tmp_path / 'local'}", f"paths.raw_dir={store.raw}"]
    chain(local)
    chain(store.overrides())
    here = train.run(compose("train", [*local, f"runs_dir={tmp_path / 'runs'}"]))
    cfg = store.compose("train", f"runs_dir={tmp_path / 'runs'}")
    there = train.run(cfg)  # the features, split and lake mirrored from the store
    assert Path(str(there.run)).is_relative_to(tmp_path / "runs")
    assert there.metrics["val/ndcg@10"] == here.metrics["val/ndcg@10"]
    assert there.metrics["val/users"] == here.metrics["val/users"]


# -- the cache ----------------------------------------------------------------------------------------------------


def test_an_unchanged_stored_folder_is_read_from_the_cache(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    ingest.run(store.compose("ingest"))
    fetched: list[str] = []
    download = RemoteFolder.download

    def counting(self: RemoteFolder, rels: list[str], target: Path) -> None:
        fetched.extend(rels)
        download(self, rels, target)

    monkeypatch.setattr(RemoteFolder, "download", counting)
    split.run(store.compose("split"))
    assert fetched == []  # ingest left its mirror in the cache: the stored manifest is the same
    cfg = store.compose("split", f"paths.cache_dir={store.cache.parent / 'elsewhere'}")
    split.run(cfg)
    assert fetched and all(not rel.endswith(MANIFEST) for rel in fetched)  # another machine's cache fetches
    fetched.clear()
    split.run(cfg)
    assert fetched == []


def test_ingesting_the_same_input_again_publishes_nothing(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    ingest.run(store.compose("ingest"))
    published: list[Path] = []
    monkeypatch.setattr(RemoteFolder, "publish", lambda self, local, kind: published.append(local))
    assert ingest.run(store.compose("ingest")).no_op
    assert ingest.run(store.compose("ingest", f"paths.cache_dir={store.cache / 'fresh'}")).no_op  # fingerprint
    assert published == []


def test_an_appended_lake_sends_only_its_new_days(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from recsys_cli.registry.storage import Storage

    raw = tmp_path / "raw"
    shutil.copytree(store.raw, raw)
    lines = (raw / "synth" / "events.csv").read_text().splitlines(keepends=True)
    early = [ln for ln in lines[1:] if ln < "2026-01-15"]
    (raw / "synth" / "events.csv").write_text(lines[0] + "".join(early))
    later = lines[0] + "".join(ln for ln in lines[1:] if ln >= "2026-01-15")
    overrides = store.overrides(f"paths.raw_dir={raw}")
    ingest.run(compose("ingest", overrides))
    (raw / "synth" / "events-2.csv").write_text(later)
    sent: list[str] = []
    upload = Storage.upload

    def counting(self: Storage, source: Path, path: str, sha256: str, size: int) -> None:
        sent.append(path)
        upload(self, source, path, sha256, size)

    monkeypatch.setattr(Storage, "upload", counting)
    ingest.run(compose("ingest", overrides), append=True)
    assert sent and not any("date=2026-01-0" in path for path in sent)  # the first days stay as stored
    local = [f"paths.data_dir={tmp_path / 'local'}", f"paths.raw_dir={raw}"]
    (raw / "synth" / "events-2.csv").rename(tmp_path / "events-2.csv")
    ingest.run(compose("ingest", local))
    (tmp_path / "events-2.csv").rename(raw / "synth" / "events-2.csv")
    ingest.run(compose("ingest", local), append=True)
    lake = store.folder(compose("ingest", overrides), "lake_dir")
    tables = stored_tables(lake)
    for rel, table in local_tables(Path(str(compose("ingest", local).lake_dir))).items():
        assert_frame_equal(tables[rel], table)


def test_ingest_rebuilds_a_lake_damaged_in_the_store(store: Store) -> None:
    ingest.run(store.compose("ingest"))
    lake = store.folder(store.compose("ingest"), "lake_dir")
    rel = parquet_key(lake)
    lake.storage.put(lake.storage.path(rel), b"PAR1 damaged PAR1")
    again = ingest.run(store.compose("ingest", f"paths.cache_dir={store.cache / 'fresh'}"))
    assert not again.no_op
    split.run(store.compose("split", f"paths.cache_dir={store.cache / 'other'}"))  # verified from the store


# -- what is never trusted ----------------------------------------------------------------------------------------


def test_a_file_changed_in_the_store_is_refused_naming_the_folder(store: Store) -> None:
    ingest.run(store.compose("ingest"))
    lake = store.folder(store.compose("ingest"), "lake_dir")
    rel = parquet_key(lake)
    lake.storage.put(lake.storage.path(rel), b"PAR1 not the table that was written PAR1")
    with pytest.raises(IntegrityError, match=rf"^{lake.url}: damaged lake: changed size: {rel}"):
        split.run(store.compose("split", f"paths.cache_dir={store.cache / 'fresh'}"))
    assert not (store.cache / "fresh" / "s3").exists() or not any((store.cache / "fresh").rglob("*.parquet"))


def test_an_edited_stored_manifest_is_refused(store: Store) -> None:
    ingest.run(store.compose("ingest"))
    lake = store.folder(store.compose("ingest"), "lake_dir")
    manifest = json.loads(lake.manifest_bytes() or b"{}")
    manifest["rows"]["events"] += 1
    lake.storage.put(lake.storage.path(MANIFEST), json.dumps(manifest).encode())
    with pytest.raises(IntegrityError, match="manifest.json was edited after it was written"):
        split.run(store.compose("split"))


def test_a_folder_without_manifest_does_not_exist_for_readers(store: Store) -> None:
    ingest.run(store.compose("ingest"))
    lake = store.folder(store.compose("ingest"), "lake_dir")
    lake.storage.remove(lake.storage.path(MANIFEST))
    with pytest.raises(LakeError, match=rf"^{lake.url}: no lake here \(no manifest.json"):
        split.run(store.compose("split"))


def test_a_publication_cut_short_is_invisible_and_the_next_run_completes_it(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    from recsys_cli.registry.storage import Storage

    upload, sent = Storage.upload, [0]

    def dying(self: Storage, source: Path, path: str, sha256: str, size: int) -> None:
        sent[0] += 1
        if sent[0] == 3:
            raise KeyboardInterrupt  # the process stops mid-upload
        upload(self, source, path, sha256, size)

    monkeypatch.setattr(Storage, "upload", dying)
    with pytest.raises(KeyboardInterrupt):
        ingest.run(store.compose("ingest"))
    monkeypatch.setattr(Storage, "upload", upload)
    lake = store.folder(store.compose("ingest"), "lake_dir")
    assert lake.manifest_bytes() is None and lake.objects()  # files, but no lake
    with pytest.raises(LakeError, match="no lake here"):
        split.run(store.compose("split"))
    ingest.run(store.compose("ingest"))  # our unfinished folder (its marker says so): replaced
    split.run(store.compose("split"))


def test_a_foreign_folder_is_never_replaced(store: Store) -> None:
    cfg = store.compose("ingest")
    lake = store.folder(cfg, "lake_dir")
    notes = lake.storage.path("notes.txt")
    lake.storage.put(notes, b"someone else's")
    with pytest.raises(OutputError, match=rf"^{lake.url}: refusing to replace this folder \(not a lake"):
        ingest.run(cfg)
    assert lake.storage.read(notes) == b"someone else's" and lake.manifest_bytes() is None


def test_a_folder_of_another_kind_is_never_replaced(store: Store) -> None:
    chain(store.overrides())
    cfg = store.compose("split", f"split_dir={store.compose('ingest').lake_dir}")  # the split over the lake
    with pytest.raises(OutputError, match="refusing to replace this folder"):
        split.run(cfg)


def test_a_new_version_sends_its_changed_files_and_leaves_none_of_the_old_one(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from recsys_cli.registry.storage import Storage

    upload, sent = Storage.upload, []

    def counting(self: Storage, source: Path, path: str, sha256: str, size: int) -> None:
        sent.append(path.rsplit("/x/", 1)[-1])
        upload(self, source, path, sha256, size)

    monkeypatch.setattr(Storage, "upload", counting)
    folder = RemoteFolder(f"{store.url}/splits/x", {"endpoint_url": store.endpoint})
    for files in (["a.parquet", "fold-0/b.parquet"], ["fold-0/b.parquet", "fold-1/c.parquet"]):
        sent.clear()
        local = tmp_path / "-".join(files).replace("/", "_")
        for rel in files:
            (local / rel).parent.mkdir(parents=True, exist_ok=True)
            (local / rel).write_bytes(rel.encode())
        write_sealed(local, {KIND: SPLIT})
        with folder.lock(SPLIT):
            folder.publish(local, SPLIT)
        assert set(folder.objects()) == {*files, MANIFEST}
    assert sent == ["fold-1/c.parquet"]  # fold-0/b.parquet is stored as it is


# -- one writer at a time -----------------------------------------------------------------------------------------


def test_a_second_writer_gets_a_clear_error_while_the_first_holds_the_lock(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    ingest.run(store.compose("ingest"))
    cfg = store.compose("split")
    monkeypatch.setenv(LOCK_TIMEOUT_ENV, "0")
    with store.folder(cfg, "split_dir").lock(SPLIT):
        with pytest.raises(OutputError, match=r"another recsys process \(.+@.+ since .+\) is writing it"):
            split.run(cfg)
    split.run(cfg)  # released


def test_a_second_writer_waits_for_the_first(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    ingest.run(store.compose("ingest"))
    cfg = store.compose("split")
    folder = store.folder(cfg, "split_dir")
    monkeypatch.setenv(LOCK_TIMEOUT_ENV, "60")
    done: list[Any] = []
    with folder.lock(SPLIT):
        waiter = threading.Thread(target=lambda: done.append(split.run(cfg)))
        waiter.start()
        waiter.join(timeout=2)
        assert waiter.is_alive() and folder.manifest_bytes() is None  # waiting, nothing written
    waiter.join(timeout=60)
    assert done and folder.manifest_bytes() is not None


def test_of_two_racing_lockers_exactly_one_wins(store: Store) -> None:
    folder = RemoteFolder(f"{store.url}/splits/race", {"endpoint_url": store.endpoint})
    barrier, outcomes = threading.Barrier(2), []

    def take() -> None:
        barrier.wait(timeout=30)
        try:
            with folder.lock(SPLIT, timeout_s=0):
                outcomes.append("won")
                barrier.wait(timeout=30)  # held until the other has tried
        except OutputError:
            outcomes.append("refused")
            barrier.wait(timeout=30)

    threads = [threading.Thread(target=take) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(outcomes) == ["refused", "won"]


# -- stores that cannot be used -----------------------------------------------------------------------------------


def test_a_missing_bucket_is_one_line_naming_it(store: Store) -> None:
    cfg = store.compose("split", "paths.data_dir=s3://no-such-bucket-here/data")
    with pytest.raises(
        RemoteStoreError, match=r"^s3://no-such-bucket-here/data/\S+: no such bucket s3://no-such-bucket-here"
    ):
        split.run(cfg)


def test_an_unreachable_store_is_one_line_naming_it_and_exits_non_zero(store: Store) -> None:
    endpoint = f"http://127.0.0.1:{free_port()}"
    overrides = [
        f"paths.data_dir={store.url}",
        f"paths.cache_dir={store.cache}",
        f"+paths.storage_options.endpoint_url={endpoint}",
        "+paths.storage_options.config_kwargs.retries.max_attempts=1",
    ]
    result = CliRunner().invoke(app, ["split", *overrides])
    assert result.exit_code == 1
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and store.url in lines[0] and "EndpointConnectionError" in lines[0], result.stderr


def test_raw_inputs_on_the_store_are_refused_by_name(store: Store) -> None:
    with pytest.raises(ConfigError, match=r"^data.path = s3://.+: raw inputs are read from a local folder"):
        ingest.run(compose("ingest", [f"paths.data_dir={store.url}"]))


def test_mirrors_sit_at_the_urls_path_and_other_schemes_are_refused(tmp_path: Path) -> None:
    assert mirror_path(tmp_path, "s3://bucket/a/lake/synth") == tmp_path / "s3" / "bucket" / "a" / "lake" / "synth"
    with pytest.raises(ConfigError, match="gs:// is not supported"):
        mirror_path(tmp_path, "gs://bucket/a")
    for url in ("s3://bucket/a/../b", "s3://bucket"):
        with pytest.raises(ConfigError, match="not a folder URL"):
            mirror_path(tmp_path, url)


def test_credentials_in_the_config_are_refused() -> None:
    with pytest.raises(ConfigError, match="secret: credentials come from the AWS_\\* environment"):
        compose("split", ["+paths.storage_options.secret=abc"])
