"""`recsys ingest` against bad outputs, bad inputs, weak keys and undeclared personal columns."""

from __future__ import annotations

import gzip
import json
import os
from pathlib import Path

import polars as pl
import pytest

from tests.adversarial.conftest import LAKE, RAW, SPLIT, Workspace, cases

GENERIC = "data/raw/generic"
GENERIC_LAKE = "data/lake/generic"
HEADER = "user_id,item_id,event_type,ts"
# Raw identifiers of the hand-written generic shop: none may reach a message or a written file.
USERS = [f"gu-{i:04d}" for i in range(12)]
GOOD_ROWS = [
    f"{USERS[i % 12]},I{i % 7},{('view', 'add_to_cart', 'purchase')[i % 3]},2026-01-0{1 + i % 5}T1{i % 10}:00:00Z"
    for i in range(60)
]
STRONG_KEY = "k3Jx9-Qm2Lp8-Zr7Tv4-Wn6Yh1-Bc5Fd0-Ge2Ua9"


def write_generic(ws: Workspace, name: str, content: str | bytes) -> Path:
    """A file in the generic source's raw folder; its raw ids join the workspace's secrets."""
    folder = ws.path(GENERIC)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    ws.secrets = ws.secrets | frozenset(USERS)
    return path


def good_csv(rows: list[str] | None = None, header: str = HEADER) -> str:
    return header + "\n" + "\n".join(GOOD_ROWS if rows is None else rows) + "\n"


def lake_events(ws: Workspace, lake: str = GENERIC_LAKE) -> pl.DataFrame:
    return pl.read_parquet(ws.path(lake) / "events" / "**" / "*.parquet", hive_partitioning=True)


# ---------------------------------------------------------------- output folders (slice A)

BAD_LAKE_DIRS = {
    "the data folder (holds raw, splits, features)": "data",
    "the raw folder of the source itself": RAW,
    "the whole raw folder": "data/raw",
    "the working directory": ".",
    "a split folder": SPLIT,
    "the runs folder": "runs",
    "the parent of the lakes": "data/lake",
    "the features folder": "data/features",
    "an existing file": f"{RAW}/events.csv",
    "a folder under a file": f"{RAW}/events.csv/lake",
    "a folder inside the raw input": f"{RAW}/lake",
}


@pytest.mark.slice("A")
@pytest.mark.parametrize("target", cases(BAD_LAKE_DIRS, fast=5))
def test_lake_dir_that_is_not_a_lake_is_refused(ws: Workspace, target: str) -> None:
    ws.refused("ingest", f"lake_dir={target}")


@pytest.mark.slow
@pytest.mark.slice("A")
def test_lake_dir_that_is_a_run_folder_is_refused(ws: Workspace) -> None:
    ws.refused("ingest", f"lake_dir={ws.runs['ease']}")


@pytest.mark.slow
@pytest.mark.slice("A")
def test_lake_dir_through_a_symlink_to_the_raw_folder_is_refused(ws: Workspace) -> None:
    os.symlink(ws.path(RAW).resolve(), ws.path("data/lake/alias"))
    ws.refused("ingest", "lake_dir=data/lake/alias")


@pytest.mark.slice("A")
def test_raw_folder_inside_the_lake_is_refused(ws: Workspace) -> None:
    """paths.raw_dir=data/lake makes the source's input folder the lake itself."""
    ws.refused("ingest", "paths.raw_dir=data/lake")


@pytest.mark.slice("A")
def test_lake_dir_of_another_source_is_refused(ws: Workspace) -> None:
    """A full (not append) ingest of the generic source over the synth lake replaces another source's lake."""
    write_generic(ws, "events.csv", good_csv())
    ws.refused("ingest", "data=generic", f"lake_dir={LAKE}")


# ---------------------------------------------------------------- readers (slice D)


def _gzip(text: str) -> bytes:
    return gzip.compress(text.encode())


# Read whole, as any CSV reader would: every row lands (or one clean line, never a traceback).
READABLE_FILES: dict[str, tuple[bytes | str, int]] = {
    "cr-only line ends": (good_csv().replace("\n", "\r"), len(set(GOOD_ROWS))),
    "gzip bytes named .csv": (_gzip(good_csv()), len(set(GOOD_ROWS))),
    "crlf line ends and a byte-order mark": ("\ufeff" + good_csv().replace("\n", "\r\n"), len(set(GOOD_ROWS))),
    "header only": (HEADER + "\n", 0),
}


@pytest.mark.slice("D")
@pytest.mark.parametrize("content,rows", cases(READABLE_FILES, fast=4, unpack=True))
def test_odd_but_readable_events_file_is_read_whole(ws: Workspace, content: bytes | str, rows: int) -> None:
    write_generic(ws, "events.csv", content)
    if ws.handled("ingest", "data=generic").returncode == 0 and rows:
        assert lake_events(ws).height == rows


BAD_FILES: dict[str, tuple[str, bytes | str, tuple[str, ...]]] = {
    "empty file": ("events.csv", b"", ()),
    "missing item_id column": ("events.csv", good_csv([r.rsplit(",", 3)[0] for r in GOOD_ROWS], "user_id"), ()),
    "random binary": ("events.csv", bytes(range(256)) * 40, ()),
    "nul bytes": ("events.csv", good_csv().replace(",I3,", ",I\x003,"), ()),
    "utf-16 text": ("events.csv", good_csv().encode("utf-16"), ()),
    "only a byte-order mark": ("events.csv", b"\xef\xbb\xbf", ()),
    "header of 20000 columns": ("events.csv", ",".join(f"c{i}" for i in range(20000)) + "\n1\n", ()),
}


@pytest.mark.slice("D")
@pytest.mark.parametrize("name,content,overrides", cases(BAD_FILES, fast=4, unpack=True))
def test_unreadable_events_file_is_refused(
    ws: Workspace, name: str, content: bytes | str, overrides: tuple[str, ...]
) -> None:
    write_generic(ws, name, content)
    ws.refused("ingest", "data=generic", *overrides)


@pytest.mark.slice("D")
def test_gzipped_csv_in_the_generic_source_is_read_or_refused(ws: Workspace) -> None:
    """`*.csv.gz` named in the file pattern: either read (every row kept) or one clean line."""
    write_generic(ws, "events.csv.gz", _gzip(good_csv()))
    result = ws.handled("ingest", "data=generic", "data.events.files=[events*.csv.gz]")
    if result.returncode == 0:
        assert lake_events(ws).height == len(GOOD_ROWS)


@pytest.mark.slice("D")
def test_parquet_with_list_typed_ids_is_quarantined_or_refused(ws: Workspace) -> None:
    write_generic(ws, "placeholder.txt", "")
    frame = pl.DataFrame(
        {
            "user_id": [[u] for u in USERS[:6]],
            "item_id": [["I1"], ["I2"], ["I3"], ["I1"], ["I2"], ["I3"]],
            "event_type": ["view"] * 6,
            "ts": ["2026-01-01T10:00:00Z"] * 6,
        }
    )
    frame.write_parquet(ws.path(GENERIC) / "events.parquet")
    ws.refused("ingest", "data=generic", "data.events.format=parquet", "data.events.files=[events*.parquet]")


@pytest.mark.slice("D")
def test_jsonl_ids_that_are_lists_or_objects_are_quarantined(ws: Workspace) -> None:
    lines = [
        json.dumps({"user_id": u, "item_id": "I1", "event_type": "view", "ts": "2026-01-02T10:00:00Z"}) for u in USERS
    ]
    lines += [
        json.dumps({"user_id": [USERS[0]], "item_id": "I1", "event_type": "view", "ts": "2026-01-02T10:00:00Z"}),
        json.dumps({"user_id": USERS[1], "item_id": {"id": "I1"}, "event_type": "view", "ts": "2026-01-02T10:00:00Z"}),
    ]
    write_generic(ws, "events.jsonl", "\n".join(lines) + "\n")
    ws.handled("ingest", "data=generic", "data.events.format=jsonl", "data.events.files=[events*.jsonl]")
    if ws.last.returncode == 0:
        events = lake_events(ws)
        assert events.height == len(USERS), "list/object ids must be quarantined, not kept as text"
        assert not events["item_id"].str.contains(r"[\[{]").any()


@pytest.mark.slice("D")
def test_unterminated_quote_quarantines_the_row_and_prints_no_raw_id(ws: Workspace) -> None:
    rows = [*GOOD_ROWS[:30], f'"{USERS[5]}-secret,I1,view,2026-01-02T10:00:00Z', *GOOD_ROWS[30:]]
    ws.secrets = ws.secrets | {f"{USERS[5]}-secret"}
    write_generic(ws, "events.csv", good_csv(rows))
    ws.handled("ingest", "data=generic", "validation.max_bad_fraction=0.5")


@pytest.mark.slice("D")
def test_ragged_row_is_quarantined_not_the_whole_file(ws: Workspace) -> None:
    rows = [*GOOD_ROWS[:30], f"{USERS[1]},I1,view,2026-01-02T10:00:00Z,extra,fields", *GOOD_ROWS[30:]]
    write_generic(ws, "events.csv", good_csv(rows))
    ws.succeeds("ingest", "data=generic")
    assert lake_events(ws).height == len(set(GOOD_ROWS))


@pytest.mark.slice("D")
def test_ids_with_surrounding_spaces_are_the_same_item(ws: Workspace) -> None:
    rows = [f"{USERS[0]},I1,view,2026-01-01T10:00:00Z", f"{USERS[1]}, I1 ,view,2026-01-01T11:00:00Z"]
    write_generic(ws, "events.csv", good_csv([*rows, *GOOD_ROWS]))
    ws.succeeds("ingest", "data=generic")
    assert " I1 " not in set(lake_events(ws)["item_id"].to_list())


@pytest.mark.slice("D")
@pytest.mark.parametrize("price", cases({p: p for p in ["inf", "NaN", "1e300", "-inf", "1e400"]}, fast=2))
def test_non_finite_or_absurd_prices_are_quarantined(ws: Workspace, price: str) -> None:
    rows = [r + ",9.5" for r in GOOD_ROWS] + [f"{USERS[2]},I2,purchase,2026-01-03T10:00:00Z,{price}"]
    write_generic(ws, "events.csv", good_csv(rows, HEADER + ",price"))
    ws.succeeds("ingest", "data=generic", "+data.events.columns.price=price")
    prices = lake_events(ws)["price"]
    assert prices.is_finite().all() and (prices.abs() < 1e12).all(), f"price {price} reached the lake"


@pytest.mark.slice("D")
def test_every_iso_8601_spelling_is_parsed(ws: Workspace) -> None:
    spellings = [
        "2026-01-02T10:00:00Z",
        "2026-01-02T10:00:00+00:00",
        "2026-01-02 10:00:00",
        "2026-01-02T10:00:00.123Z",
        "2026-01-02T12:00:00+02:00",
        "2026-01-02T10:00Z",
        "2026-01-02",
    ]
    rows = [f"{USERS[i]},I{i},view,{ts}" for i, ts in enumerate(spellings)]
    write_generic(ws, "events.csv", good_csv([*GOOD_ROWS, *rows]))
    ws.succeeds("ingest", "data=generic")
    assert lake_events(ws).height == len(GOOD_ROWS) + len(spellings)


@pytest.mark.slow
@pytest.mark.slice("D")
def test_negative_epoch_timestamps_are_quarantined(ws: Workspace) -> None:
    rows = [f"{u},I1,view,{1767261600 + 3600 * i}" for i, u in enumerate(USERS)] + [f"{USERS[0]},I2,view,-86400"]
    write_generic(ws, "events.csv", good_csv(rows))
    ws.succeeds("ingest", "data=generic", "data.events.timestamp.unit=s", "validation.max_bad_fraction=0.2")
    assert lake_events(ws).height == len(USERS)


@pytest.mark.slow
@pytest.mark.slice("D")
def test_unicode_ids_survive_ingest(ws: Workspace) -> None:
    items = ["Ｉ１", "über", "שלום", "🛒", "a\u200bb", "İstanbul"]
    rows = [f"{USERS[i]},{item},view,2026-01-0{1 + i % 3}T10:00:00Z" for i, item in enumerate(items)]
    write_generic(ws, "events.csv", good_csv([*GOOD_ROWS, *rows]))
    ws.succeeds("ingest", "data=generic")
    assert set(items) <= set(lake_events(ws)["item_id"].to_list())


@pytest.mark.slow
@pytest.mark.slice("D")
def test_latin1_bytes_in_a_row_are_quarantined_or_refused(ws: Workspace) -> None:
    content = good_csv().encode() + f"{USERS[3]},caf\xe9,view,2026-01-02T10:00:00Z\n".encode("latin-1")
    write_generic(ws, "events.csv", content)
    ws.handled("ingest", "data=generic")


@pytest.mark.slow
@pytest.mark.slice("D")
def test_non_utf8_file_name_is_read_or_refused(ws: Workspace) -> None:
    write_generic(ws, "placeholder.txt", "")
    name = os.fsencode(ws.path(GENERIC)) + b"/events-\xff\xfe.csv"
    with open(name, "wb") as handle:
        handle.write(good_csv().encode())
    ws.handled("ingest", "data=generic")


@pytest.mark.slow
@pytest.mark.slice("D")
def test_a_folder_named_like_an_events_file_is_refused(ws: Workspace) -> None:
    write_generic(ws, "events.csv", good_csv())
    (ws.path(GENERIC) / "events-2.csv").mkdir()
    ws.refused("ingest", "data=generic")


@pytest.mark.slow
@pytest.mark.slice("D")
def test_duplicate_header_columns_are_refused(ws: Workspace) -> None:
    rows = [r + "," + r.split(",")[0] for r in GOOD_ROWS]
    write_generic(ws, "events.csv", good_csv(rows, HEADER + ",user_id"))
    ws.refused("ingest", "data=generic")


@pytest.mark.slice("D")
def test_appending_another_sources_files_into_a_lake_is_refused(ws: Workspace) -> None:
    write_generic(ws, "events.csv", good_csv())
    ws.refused("ingest", "--append", "data=generic", f"lake_dir={LAKE}")


@pytest.mark.slow
@pytest.mark.slice("D")
def test_append_to_a_missing_lake_is_refused_or_creates_it(ws: Workspace) -> None:
    write_generic(ws, "events.csv", good_csv())
    ws.handled("ingest", "--append", "data=generic")


@pytest.mark.slow
@pytest.mark.slice("D")
def test_missing_raw_folder_is_refused(ws: Workspace) -> None:
    ws.refused("ingest", "data=generic")


# ---------------------------------------------------------------- personal data (slice C)

WEAK_KEYS = {
    "forty a's": "a" * 40,
    "the public development key": "recsys-DEVELOPMENT-key-not-for-production",
    "too short": "s3cr3t",
    "one repeated pair": "ab" * 20,
    "digits in order": "0123456789" * 4,
    "whitespace": " " * 40,
}


@pytest.mark.slice("C")
@pytest.mark.parametrize("key", cases(WEAK_KEYS, fast=2))
def test_production_refuses_a_weak_key(ws: Workspace, key: str) -> None:
    ws.refused("ingest", "pii=production", "lake_dir=data/lake/prod", env=ws.env(RECSYS_PII_KEY=key))


@pytest.mark.slow
@pytest.mark.slice("C")
def test_production_refuses_without_a_key(ws: Workspace) -> None:
    ws.refused("ingest", "pii=production", "lake_dir=data/lake/prod")


PERSONAL_VARIANTS = {
    "Email": "Email",
    "phone_number": "phone_number",
    "E-Mail": "E-Mail",
    "EMAIL_ADDRESS": "EMAIL_ADDRESS",
    "Phone": "Phone",
    "mobile": "mobile",
    "ip_address": "ip_address",
}


def _users_csv(column: str) -> str:
    values = [_personal_value(column, i) for i in range(len(USERS))]
    rows = [f"{u},2025-06-01T00:00:00Z,{v}" for u, v in zip(USERS, values, strict=True)]
    return f"user_id,signup_at,{column}\n" + "\n".join(rows) + "\n"


def _personal_value(column: str, i: int) -> str:
    lowered = column.lower()
    if "mail" in lowered:
        return f"person{i}@private-example.org"
    if "ip" in lowered:
        return f"192.168.77.{i + 10}"
    return f"+44-7700-9{i:05d}"


@pytest.mark.slice("C")
@pytest.mark.parametrize("column", cases(PERSONAL_VARIANTS, fast=2))
def test_undeclared_personal_column_never_reaches_the_lake(ws: Workspace, column: str) -> None:
    """Development mode: a variant spelling of a personal column is still dropped or hashed."""
    write_generic(ws, "events.csv", good_csv())
    write_generic(ws, "users.csv", _users_csv(column))
    ws.secrets = ws.secrets | {_personal_value(column, i) for i in range(len(USERS))}
    ws.handled("ingest", "data=generic")


@pytest.mark.slice("C")
@pytest.mark.parametrize("column", ["Email", "phone_number", "favourite_colour"])
def test_production_refuses_undeclared_columns(ws: Workspace, column: str) -> None:
    write_generic(ws, "events.csv", good_csv())
    write_generic(ws, "users.csv", _users_csv(column))
    ws.secrets = ws.secrets | {_personal_value(column, i) for i in range(len(USERS))}
    ws.refused("ingest", "data=generic", "pii=production", env=ws.env(RECSYS_PII_KEY=STRONG_KEY))


# ---------------------------------------------------------------- configuration (slice E)

BAD_INGEST_CONFIG = {
    "negative max_bad_fraction": ("validation.max_bad_fraction=-1",),
    "max_bad_fraction above one": ("validation.max_bad_fraction=2",),
    "max_bad_fraction not a number": ("validation.max_bad_fraction=abc",),
    "zero window rows": ("validation.window_rows=0",),
    "negative future days": ("validation.max_future_days=-3",),
    "min_ts not a time": ("validation.min_ts=yesterday",),
    "unknown source": ("data=nosuchsource",),
    "unknown key": ("nosuchkey=1",),
    "unknown timestamp unit": ("data=generic", "data.events.timestamp.unit=fortnights"),
    "unknown file format": ("data=generic", "data.events.format=xlsx"),
    "events files not a list": ("data=generic", "data.events.files=42"),
}


@pytest.mark.slice("E")
@pytest.mark.parametrize("overrides", cases(BAD_INGEST_CONFIG, fast=2))
def test_invalid_ingest_config_is_refused(ws: Workspace, overrides: tuple[str, ...]) -> None:
    write_generic(ws, "events.csv", good_csv())
    ws.refused("ingest", *overrides)


@pytest.mark.slice("E")
def test_config_dir_without_the_data_group_is_refused(ws: Workspace) -> None:
    conf = ws.path("conf-empty")
    conf.mkdir()
    (conf / "ingest.yaml").write_text("defaults:\n  - data: synth\n  - _self_\n")
    ws.refused("ingest", "--config-dir", conf)


@pytest.mark.slow
@pytest.mark.slice("E")
def test_missing_config_dir_is_refused(ws: Workspace) -> None:
    ws.refused("ingest", "--config-dir", "no/such/conf")


# ---------------------------------------------------------------- two writers at once (slice A)

SYNTH_HEADER = "event_time,customer_id,sku,event,session,rating,qty,unit_price,channel,ip"


def _extra_events(ws: Workspace, name: str, day: int) -> Path:
    users = sorted(s for s in ws.secrets if s.startswith("C0") and len(s) == 8)[:20]
    rows = [
        f"2026-02-{day:02d}T1{i % 10}:00:00.000Z,{u},P0000{i % 50:03d},view,x{day}s{i},,,,web,10.9.{day}.{i}"
        for i, u in enumerate(users)
    ]
    path = ws.path(RAW) / name
    path.write_text(SYNTH_HEADER + "\n" + "\n".join(rows) + "\n")
    return path


def _concurrently(ws: Workspace, *argvs: tuple[str, ...]) -> list[tuple[int, str]]:
    import subprocess
    import sys

    from tests.adversarial.conftest import cli_env

    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "recsys_cli", *argv],
            cwd=ws.root,
            env=cli_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for argv in argvs
    ]
    outs = [p.communicate(timeout=180) for p in procs]
    return [(p.returncode, err.decode(errors="replace")) for p, (_, err) in zip(procs, outs, strict=True)]


def _clean(rc: int, stderr: str) -> bool:
    return "Traceback" not in stderr and (rc == 0 or len([x for x in stderr.splitlines() if x.strip()]) == 1)


@pytest.mark.slice("A")
def test_two_appends_at_once_never_both_succeed_with_a_loss(ws: Workspace) -> None:
    first, second = _extra_events(ws, "events-extra1.csv", 20), _extra_events(ws, "events-extra2.csv", 21)
    results = _concurrently(ws, ("ingest", "--append"), ("ingest", "--append"))
    assert all(_clean(rc, err) for rc, err in results), results
    assert any(rc == 0 for rc, _ in results), results
    manifest = json.loads((ws.path(LAKE) / "manifest.json").read_text())
    listed = {Path(i["path"]).name for i in manifest["inputs"]}
    if all(rc == 0 for rc, _ in results):
        assert {first.name, second.name} <= listed, f"both appends succeeded but the lake lists {sorted(listed)}"
    verify = ws.run("lake", "describe", LAKE, "--verify", "--brief")
    assert verify.returncode == 0, verify.describe()


@pytest.mark.slice("A")
def test_two_ingests_at_once_leave_one_clean_lake(ws: Workspace) -> None:
    results = _concurrently(ws, ("ingest", "lake_dir=data/lake/twin"), ("ingest", "lake_dir=data/lake/twin"))
    assert all(_clean(rc, err) for rc, err in results), results
    assert any(rc == 0 for rc, _ in results), results
    verify = ws.run("lake", "describe", "data/lake/twin", "--verify", "--brief")
    assert verify.returncode == 0, verify.describe()
    leftovers = [p.name for p in ws.path("data/lake").iterdir() if p.name not in {"synth", "twin"}]
    assert not leftovers, f"staging folders left behind: {leftovers}"


# ---------------------------------------------------------------- reconciliation details (slice D)


@pytest.mark.slice("D")
def test_quarantine_line_numbers_are_physical_lines(ws: Workspace) -> None:
    """A quoted field spanning two lines earlier in the file must not shift the bad row's line number."""
    rows = [f'{r},"note"' for r in GOOD_ROWS[:10]]
    rows.insert(3, f'{USERS[1]},I2,view,2026-01-02T10:00:00Z,"two\nlines"')
    rows.append(f"{USERS[2]},I3,teleport,2026-01-02T11:00:00Z,bad")
    write_generic(ws, "events.csv", good_csv(rows, HEADER + ",note"))
    ws.succeeds("ingest", "data=generic", "validation.max_bad_fraction=0.5")
    quarantine = pl.read_parquet(ws.path(GENERIC_LAKE) / "quarantine" / "*.parquet")
    physical = 1 + len(rows) + 1  # header, the rows, and the extra line of the two-line field
    assert quarantine["_line"].to_list() == [physical]


@pytest.mark.slice("D")
def test_append_picks_up_a_changed_items_table(ws: Workspace) -> None:
    items = ws.path(RAW) / "items.csv"
    items.write_text(items.read_text() + "P9999999,cat_01,brand_001,12.5,3,2026-01-05T00:00:00.000Z\n")
    ws.succeeds("ingest", "--append", may_change=[LAKE])
    table = pl.read_parquet(ws.path(LAKE) / "items.parquet")
    assert "P9999999" in table["item_id"].to_list(), "--append ignored a changed items.csv"


@pytest.mark.slice("C")
def test_the_pii_key_is_never_written_or_printed(ws: Workspace) -> None:
    write_generic(ws, "events.csv", good_csv())
    ws.secrets = ws.secrets | {STRONG_KEY}
    ws.succeeds("ingest", "data=generic", "pii=production", env=ws.env(RECSYS_PII_KEY=STRONG_KEY))
