"""A lake, split or feature folder is checked against its manifest on every read:
names and sizes always, sha256 with `full`, the manifest's own digest always."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import polars as pl
import pytest

from recsys_cli.data.lake import MANIFEST, decoding, open_lake, open_output, scan_events, verify, write_sealed
from recsys_cli.errors import IntegrityError, LakeError
from recsys_cli.registry.integrity import SEAL

DAYS = ("2026-01-01", "2026-01-02", "2026-01-03")


def _part(lake: Path, day: str) -> Path:
    return lake / "events" / f"date={day}" / "part-00001.parquet"


@pytest.fixture
def lake(tmp_path: Path) -> Path:
    """Three day partitions and an items table, sealed as `recsys ingest` seals them."""
    lake = tmp_path / "lake"
    for i, day in enumerate(DAYS):
        _part(lake, day).parent.mkdir(parents=True)
        pl.DataFrame({"user_id": [f"u{i}"] * 50, "item_id": [f"i{j}" for j in range(50)]}).write_parquet(
            _part(lake, day)
        )
    pl.DataFrame({"item_id": ["i0", "i1"]}).write_parquet(lake / "items.parquet")
    write_sealed(lake, {"kind": "lake", "rows": {"events": 150}})
    return lake


def _flip(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0xFF
    path.write_bytes(bytes(data))


def _edit(lake: Path, **changes: object) -> None:
    manifest = json.loads((lake / MANIFEST).read_text())
    (lake / MANIFEST).write_text(json.dumps(manifest | changes))


def test_an_intact_lake_opens_and_its_manifest_is_sealed(lake: Path) -> None:
    manifest = open_lake(lake, full=True)
    assert manifest["format_version"] == 2 and len(manifest[SEAL]) == 64
    assert [e["path"] for e in manifest["outputs"]] == [f"events/date={d}/part-00001.parquet" for d in DAYS] + [
        "items.parquet"
    ]


def test_a_missing_day_is_refused_naming_its_file(lake: Path) -> None:
    shutil.rmtree(_part(lake, DAYS[1]).parent)
    with pytest.raises(LakeError) as err:
        open_lake(lake)
    assert str(err.value) == (
        f"{lake}: damaged lake: missing: events/date=2026-01-02/part-00001.parquet; run `recsys ingest` again to "
        "repair it, or `recsys lake describe --verify` to list every problem"
    )


def test_a_duplicated_part_file_is_refused(lake: Path) -> None:
    shutil.copy(_part(lake, DAYS[0]), _part(lake, DAYS[0]).with_name("part-00001 (copy).parquet"))
    with pytest.raises(LakeError, match=r"unlisted: events/date=2026-01-01/part-00001 \(copy\).parquet"):
        open_lake(lake)


def test_a_truncated_file_is_refused(lake: Path) -> None:
    victim = _part(lake, DAYS[2])
    victim.write_bytes(victim.read_bytes()[:-10])
    with pytest.raises(LakeError, match="changed size: events/date=2026-01-03"):
        open_lake(lake)


def test_a_flipped_byte_passes_the_cheap_check_and_fails_the_default_full_one(lake: Path) -> None:
    _flip(_part(lake, DAYS[0]), 40)
    assert open_lake(lake, full=False)["rows"] == {"events": 150}
    with pytest.raises(LakeError, match="changed content: events/date=2026-01-01"):
        open_lake(lake)
    assert verify(lake) == ["changed content: events/date=2026-01-01/part-00001.parquet"]


def test_a_file_that_fails_to_decode_becomes_one_error_naming_it(lake: Path) -> None:
    victim = _part(lake, DAYS[1])
    _flip(victim, victim.stat().st_size - 5)  # the footer's length: same size, undecodable
    open_lake(lake, full=False)
    with pytest.raises(LakeError, match="damaged lake: changed content: events/date=2026-01-02") as err:
        with decoding((lake, "lake")):
            pl.scan_parquet(lake / "events", hive_partitioning=True).collect()
    assert isinstance(err.value.__cause__, pl.exceptions.ComputeError)


def test_a_query_error_on_an_intact_lake_keeps_its_own_traceback(lake: Path) -> None:
    with pytest.raises(pl.exceptions.ColumnNotFoundError), decoding((lake, "lake")):
        pl.scan_parquet(lake / "items.parquet").select("nope").collect()


@pytest.mark.parametrize(
    "changes",
    [{"rows": {"events": 151}}, {"outputs": []}, {SEAL: None}],
    ids=["row count", "file list", "seal removed"],
)
def test_an_edited_manifest_is_refused(lake: Path, changes: dict[str, object]) -> None:
    _edit(lake, **changes)
    with pytest.raises(LakeError, match=f"damaged lake: {MANIFEST} (was edited|has no {SEAL})"):
        open_lake(lake)


def test_a_legacy_lake_is_read_with_the_names_and_sizes_check_only(lake: Path) -> None:
    manifest = json.loads((lake / MANIFEST).read_text())
    del manifest[SEAL], manifest["kind"]  # as ingest wrote them before manifests were sealed:
    older = {"format_version": 1, "source": "generic", "fingerprint": "f", "rows": {"events": 7}}
    (lake / MANIFEST).write_text(json.dumps(manifest | older))
    assert open_lake(lake)["rows"] == {"events": 7}  # unsealed: its counts cannot be checked
    _part(lake, DAYS[0]).unlink()
    with pytest.raises(LakeError, match="missing: events/date=2026-01-01"):
        open_lake(lake)


@pytest.mark.parametrize("content", ["{not json", "[1, 2]", ""])
def test_an_unreadable_manifest_is_one_line(lake: Path, content: str) -> None:
    (lake / MANIFEST).write_text(content)
    with pytest.raises(LakeError, match="manifest"):
        open_lake(lake)


def test_split_and_feature_folders_get_the_same_check(tmp_path: Path) -> None:
    split = tmp_path / "split"
    (split / "fold-0").mkdir(parents=True)
    pl.DataFrame({"user_id": ["a"]}).write_parquet(split / "fold-0" / "val_targets.parquet")
    write_sealed(split, {"kind": "split", "folds": []})
    assert open_output(split, "split")["outputs"][0]["path"] == "fold-0/val_targets.parquet"
    (split / "fold-0" / "val_targets.parquet").unlink()
    with pytest.raises(IntegrityError, match="damaged split: missing: fold-0/val_targets.parquet; run `recsys split`"):
        open_output(split, "split")
    legacy = tmp_path / "legacy"
    legacy.mkdir()
    written = {"split_manifest_sha256": "0" * 64, "folds": []}  # before folders were sealed
    (legacy / MANIFEST).write_text(json.dumps(written))
    assert open_output(legacy, "features") == written
    with pytest.raises(IntegrityError, match="no features here"):
        open_output(tmp_path / "nowhere", "features")


def test_scan_events_reads_the_partitions_and_refuses_a_lake_without_any(lake: Path) -> None:
    (lake / "events" / f"date={DAYS[0]}" / ".DS_Store").write_bytes(b"\0")  # a file browser's, not ours
    assert open_lake(lake) and scan_events(lake).collect().shape == (150, 2)
    shutil.rmtree(lake / "events")
    with pytest.raises(LakeError, match="holds no events"):
        scan_events(lake)


def test_a_rust_panic_while_decoding_a_damaged_file_is_named_too(lake: Path) -> None:
    """Some flipped bytes make the Parquet reader panic (a BaseException) rather than raise."""
    _flip(_part(lake, DAYS[2]), 60)
    with pytest.raises(LakeError, match="changed content: events/date=2026-01-03"), decoding((lake, "lake")):
        raise pl.exceptions.PanicException("assertion failed: start + len <= self.len()")


@pytest.mark.parametrize(
    "manifest",
    [
        {},
        {"kind": "lake"},
        {"kind": "split", "format_version": 1},
        {"format_version": 1, "fingerprint": "f", "source": "s"},
    ],
    ids=["empty object", "a kind and nothing else", "another output's", "an older lake's without its file list"],
)
def test_a_manifest_that_does_not_describe_a_lake_is_refused(lake: Path, manifest: dict) -> None:
    (lake / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(LakeError, match=f"{lake}: (not a lake|damaged lake)"):
        open_lake(lake)


def test_a_split_manifest_that_is_a_json_list_is_one_line(tmp_path: Path) -> None:
    split = tmp_path / "split"
    split.mkdir()
    (split / MANIFEST).write_text('["fold-0"]')
    with pytest.raises(IntegrityError, match=f"{split}: not a split"):
        open_output(split, "split")
