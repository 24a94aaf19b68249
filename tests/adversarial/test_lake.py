"""A damaged or forged lake: `lake describe`, and every command that reads a lake, must notice."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.adversarial.conftest import LAKE, RAW, Workspace, cases, edit_json, file_text, flip_byte, leaked_secrets


def _days(ws: Workspace) -> list[Path]:
    return sorted(ws.path(LAKE).glob("events/date=*"))


def _part(ws: Workspace, index: int = 3) -> Path:
    return sorted(_days(ws)[index].glob("*.parquet"))[0]


def missing_day(ws: Workspace) -> None:
    shutil.rmtree(_days(ws)[5])


def duplicated_part(ws: Workspace) -> None:
    part = _part(ws)
    shutil.copy2(part, part.with_name("part-00002.parquet"))


def flipped_part(ws: Workspace) -> None:
    flip_byte(_part(ws))


def truncated_part(ws: Workspace) -> None:
    part = _part(ws)
    part.write_bytes(part.read_bytes()[:-100])


def edited_counts(ws: Workspace) -> None:
    def edit(m: dict) -> dict:
        m["rows"]["events"] += 1000
        return m

    edit_json(ws.path(LAKE) / "manifest.json", edit)


def manifest_list(ws: Workspace) -> None:
    (ws.path(LAKE) / "manifest.json").write_text(json.dumps([1, 2, 3]))


def manifest_not_json(ws: Workspace) -> None:
    (ws.path(LAKE) / "manifest.json").write_text("{not json")


def manifest_missing(ws: Workspace) -> None:
    (ws.path(LAKE) / "manifest.json").unlink()


def manifest_empty_object(ws: Workspace) -> None:
    (ws.path(LAKE) / "manifest.json").write_text("{}")


def items_swapped_for_users(ws: Workspace) -> None:
    lake = ws.path(LAKE)
    shutil.copy2(lake / "users.parquet", lake / "items.parquet")


def foreign_day(ws: Workspace) -> None:
    """A day folder copied in from elsewhere, not listed in the manifest."""
    shutil.copytree(_days(ws)[2], ws.path(LAKE) / "events" / "date=2030-01-01")


def part_swapped_between_days(ws: Workspace) -> None:
    a, b = _part(ws, 2), _part(ws, 4)
    data_a, data_b = a.read_bytes(), b.read_bytes()
    a.write_bytes(data_b)
    b.write_bytes(data_a)


def outputs_path_escapes(ws: Workspace) -> None:
    """The manifest's file list points outside the lake (at the raw input)."""

    def edit(m: dict) -> dict:
        m["outputs"][0]["path"] = "../../raw/synth/events.csv"
        return m

    edit_json(ws.path(LAKE) / "manifest.json", edit)


def part_replaced_by_symlink(ws: Workspace) -> None:
    """A part file swapped for a symlink to another day's part, copied outside the lake."""
    part = _part(ws)
    outside = ws.path("outside.parquet")
    shutil.copy2(_part(ws, 4), outside)
    part.unlink()
    part.symlink_to(outside)


DAMAGE: dict[str, Callable[[Workspace], None]] = {
    "missing day": missing_day,
    "duplicated part file": duplicated_part,
    "flipped byte in a part": flipped_part,
    "truncated part": truncated_part,
    "edited manifest counts": edited_counts,
    "manifest is a JSON list": manifest_list,
    "manifest is not JSON": manifest_not_json,
    "manifest missing": manifest_missing,
    "manifest is an empty object": manifest_empty_object,
    "items.parquet replaced by users.parquet": items_swapped_for_users,
    "unlisted day folder": foreign_day,
    "part files swapped between days": part_swapped_between_days,
    "manifest output path escapes the lake": outputs_path_escapes,
    "part replaced by a symlink out of the lake": part_replaced_by_symlink,
}


@pytest.mark.slice("B2")
@pytest.mark.parametrize("damage", cases(DAMAGE, fast=6))
def test_split_refuses_a_damaged_lake(ws: Workspace, damage: Callable[[Workspace], None]) -> None:
    damage(ws)
    ws.refused("split", "split_dir=data/splits/synth/fresh")


@pytest.mark.slice("B2")
@pytest.mark.parametrize("damage", cases(DAMAGE, fast=5))
def test_verify_refuses_a_damaged_lake(ws: Workspace, damage: Callable[[Workspace], None]) -> None:
    damage(ws)
    ws.refused("lake", "describe", LAKE, "--verify")


@pytest.mark.slice("B2")
@pytest.mark.parametrize(
    "damage",
    [missing_day, duplicated_part, flipped_part, edited_counts, manifest_list],
    ids=["missing day", "duplicated part", "flipped byte", "edited counts", "manifest list"],
)
def test_features_refuses_a_damaged_lake(ws: Workspace, damage: Callable[[Workspace], None]) -> None:
    damage(ws)
    ws.refused("features", "features_dir=data/features/synth/fresh")


@pytest.mark.slice("B2")
@pytest.mark.parametrize(
    "damage", [missing_day, duplicated_part, flipped_part], ids=["missing day", "duplicated part", "flipped byte"]
)
def test_train_refuses_a_damaged_lake(ws: Workspace, damage: Callable[[Workspace], None]) -> None:
    damage(ws)
    ws.refused("train", "model=popularity", "runs_dir=runs-fresh")


@pytest.mark.slice("B2")
@pytest.mark.parametrize(
    "damage",
    [missing_day, duplicated_part, flipped_part, edited_counts],
    ids=["missing day", "duplicated part", "flipped byte", "edited counts"],
)
def test_reingest_repairs_a_damaged_lake(ws: Workspace, damage: Callable[[Workspace], None]) -> None:
    """Re-ingest of unchanged input over a damaged lake must not answer "already up to date"."""
    damage(ws)
    result = ws.handled("ingest", may_change=[LAKE])
    if result.returncode == 0:
        verify = ws.run("lake", "describe", LAKE, "--verify", "--brief")
        assert verify.returncode == 0, "re-ingest exited 0 but left the lake damaged\n" + verify.describe()


@pytest.mark.slice("B2")
def test_header_only_lake_is_refused_by_split(ws: Workspace) -> None:
    """A lake whose every event was quarantined: split says so in one line."""
    raw = ws.path("data/raw/generic")
    raw.mkdir(parents=True)
    rows = [f"gu-{i},I{i},teleport,2026-01-0{1 + i % 5}T10:00:00Z" for i in range(20)]
    (raw / "events.csv").write_text("user_id,item_id,event_type,ts\n" + "\n".join(rows) + "\n")
    ws.secrets = ws.secrets | {f"gu-{i}" for i in range(20)}
    built = ws.run("ingest", "data=generic", "validation.max_bad_fraction=1.0")
    if built.returncode != 0:
        return  # ingest refusing a lake of quarantined rows only is a fine answer too
    ws.refused("split", "data=generic")


BAD_DESCRIBE = {
    "missing folder": "data/lake/nosuch",
    "a file": f"{RAW}/events.csv",
    "a raw folder (no manifest)": RAW,
    "a split folder": "data/splits/synth/global_temporal-engagement",
    "a run folder": None,
}


@pytest.mark.slice("B2")
@pytest.mark.parametrize("target", cases(BAD_DESCRIBE, fast=2))
def test_describe_refuses_what_is_not_a_lake(ws: Workspace, target: str | None) -> None:
    ws.refused("lake", "describe", target or ws.runs["ease"], "--verify")


@pytest.mark.slice("C")
def test_built_workspace_holds_no_raw_identifier_outside_raw(ws: Workspace) -> None:
    """The lake, quarantine, splits, features and runs of the synthetic shop: pseudonyms only."""
    texts = [file_text(p) for p in ws.root.rglob("*") if p.is_file() and "raw" not in p.parts]
    assert not leaked_secrets(texts, ws.secrets)
