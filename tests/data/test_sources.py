"""Each source maps its own layout onto the contract."""

from __future__ import annotations

import bz2
import gzip
import json
import lzma
import os
import subprocess
import sys
import tempfile
import zlib
from collections.abc import Callable
from pathlib import Path

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from recsys_cli.config import compose
from recsys_cli.data.sources import csv_reader
from recsys_cli.errors import RecsysError, SourceError
from recsys_cli.tasks.ingest import run


def events(lake: Path) -> pl.DataFrame:
    return pl.read_parquet(lake / "events", hive_partitioning=True).sort("ts")


@pytest.fixture
def original_movielens(tmp_path: Path) -> Path:
    d = tmp_path / "raw" / "ml-100k"
    d.mkdir(parents=True)
    (d / "u.data").write_text("196\t242\t3\t881250949\n186\t302\t3\t891717742\n22\t242\t1\t878887116\n")
    (d / "u.user").write_text("196|49|M|writer|55105\n186|39|F|executive|00000\n22|25|M|writer|40206\n")
    flags = ["0"] * 19
    comedy = flags.copy()
    comedy[3] = comedy[5] = "1"  # Animation, Comedy
    (d / "u.item").write_bytes(
        ("242|Kolya (1996)|24-Jan-1997||http://x|" + "|".join(comedy) + "\n").encode("latin-1")
        + ("302|L.A. Confidential (1997)|01-Jan-1997||http://x|" + "|".join(flags) + "\n").encode("latin-1")
        + "303|Café au lait (1994)|01-Jan-1994||http://x|".encode("latin-1")
        + "|".join(flags).encode()
        + b"\n"
    )
    return tmp_path


def test_movielens_original_layout(original_movielens: Path) -> None:
    cfg = compose("ingest", ["data=movielens100k", f"paths.data_dir={original_movielens}"])
    m = run(cfg).manifest
    assert m["rows"] == {"events": 3, "items": 3, "users": 3, "quarantine": 0}
    df = events(original_movielens / "lake" / "movielens100k")
    assert df["event_type"].cast(pl.String).to_list() == ["rating"] * 3
    assert df["value"].to_list() == [1.0, 3.0, 3.0]
    assert str(df["ts"][0]) == "1997-11-07 07:18:36+00:00"
    items = pl.read_parquet(original_movielens / "lake" / "movielens100k" / "items.parquet").sort("item_id")
    assert items.row(0, named=True) | {"genres": None} == {
        "item_id": "242",
        "title": "Kolya (1996)",
        "genres": None,
        "release_year": 1997,
        "category": "Animation",
    }
    assert items["title"][2] == "Café au lait (1994)"
    users = pl.read_parquet(original_movielens / "lake" / "movielens100k" / "users.parquet")
    assert set(users.columns) >= {"user_id", "age", "age_bucket", "gender", "occupation"}
    assert "zip_code" not in users.columns  # a postcode is personal: dropped (conf/pii)
    assert "196" not in users["user_id"].to_list()
    assert sorted(users["age_bucket"].to_list()) == ["25-34", "35-44", "45-54"]


def test_movielens_recbole_layout(tmp_path: Path) -> None:
    d = tmp_path / "raw" / "ml-100k"
    d.mkdir(parents=True)
    (d / "ml-100k.inter").write_text(
        "user_id:token\titem_id:token\trating:float\ttimestamp:float\n196\t242\t3\t881250949\n"
    )
    (d / "ml-100k.item").write_text(
        "item_id:token\tmovie_title:token_seq\trelease_year:token\tclass:token_seq\n242\tKolya\t1996\tComedy Drama\n"
    )
    (d / "ml-100k.user").write_text(
        "user_id:token\tage:token\tgender:token\toccupation:token\tzip_code:token\n196\t49\tM\twriter\t55105\n"
    )
    run(compose("ingest", ["data=movielens100k", f"paths.data_dir={tmp_path}"]))
    items = pl.read_parquet(tmp_path / "lake" / "movielens100k" / "items.parquet")
    assert items["genres"].to_list() == [["Comedy", "Drama"]]
    assert items["category"].to_list() == ["Comedy"]
    assert events(tmp_path / "lake" / "movielens100k")["value"].to_list() == [3.0]


def test_retailrocket_layout(tmp_path: Path) -> None:
    d = tmp_path / "raw" / "retailrocket"
    d.mkdir(parents=True)
    (d / "events.csv").write_text(
        "timestamp,visitorid,event,itemid,transactionid\n"
        "1433221332117,257597,view,355908,\n"
        "1433224214164,992329,addtocart,248676,\n"
        "1433221999827,111016,transaction,248676,4000\n"
        "1433221999827,111016,wishlist,248676,\n"
    )
    (d / "item_properties_part1.csv").write_text(
        "timestamp,itemid,property,value\n"
        "1435460400000,248676,categoryid,1338\n1431226800000,248676,categoryid,1000\n"
        "1431226800000,248676,available,1\n1431226800000,355908,790,n277200.000\n"
    )
    (d / "category_tree.csv").write_text("categoryid,parentid\n1338,1000\n")
    m = run(
        compose("ingest", ["data=retailrocket", f"paths.data_dir={tmp_path}", "validation.max_bad_fraction=0.5"])
    ).manifest
    assert m["events_by_type"] == {"view": 1, "add_to_cart": 1, "purchase": 1}
    assert m["quarantine_by_reason"] == {"unknown_event_type": 1}
    df = events(tmp_path / "lake" / "retailrocket")
    assert df.filter(pl.col("event_type") == "purchase")["transaction_id"].to_list() == ["4000"]
    items = pl.read_parquet(tmp_path / "lake" / "retailrocket" / "items.parquet").sort("item_id")
    assert items.select("item_id", "category", "available", "parent_category").rows() == [
        ("248676", "1338", 1, "1000"),
        ("355908", None, None, None),
    ]


def test_generic_jsonl_with_mapping(tmp_path: Path) -> None:
    d = tmp_path / "raw" / "generic"
    d.mkdir(parents=True)
    (d / "log.jsonl").write_text(
        '{"who": "a", "what": "i1", "action": "buy", "when": 1767261600}\n'
        '{"who": "b", "what": "i2", "action": "look", "when": 1767261601}\n'
    )
    cfg = compose(
        "ingest",
        [
            "data=generic",
            f"paths.data_dir={tmp_path}",
            "data.events.format=jsonl",
            "data.events.files=[log.jsonl]",
            "data.events.columns={user_id: who, item_id: what, event_type: action, ts: when}",
            "data.events.event_types={buy: purchase, look: view}",
            "data.events.timestamp.unit=s",
        ],
    )
    m = run(cfg).manifest
    assert m["events_by_type"] == {"view": 1, "purchase": 1}


# ------------------------------------------------------------------ the CSV reader
# Every case goes through the real ingest (`run`), on the generic source's layout.

HEADER = "user_id,item_id,event_type,ts\n"
ROWS = [f"u{i},i{i % 3},view,2026-01-0{1 + i % 3}T10:00:0{i}Z" for i in range(6)]


def generic(tmp_path: Path, content: bytes | str, name: str = "events.csv", *overrides: str) -> dict:
    raw = tmp_path / "raw" / "generic"
    raw.mkdir(parents=True, exist_ok=True)
    data = content.encode() if isinstance(content, str) else content
    (raw / name).write_bytes(data)
    cfg = compose(
        "ingest", ["data=generic", f"paths.data_dir={tmp_path}", "validation.max_bad_fraction=0.9", *overrides]
    )
    return run(cfg).manifest


def quarantined(tmp_path: Path) -> list[tuple[int, str]]:
    q = pl.read_parquet(tmp_path / "lake" / "generic" / "quarantine").sort("_line")
    return q.select("_line", "reason").rows()


def lake_rows(tmp_path: Path) -> int:
    return events(tmp_path / "lake" / "generic").height


def reconciles(manifest: dict) -> bool:
    return all(
        i["rows_in"] == i["rows_written"] + i["rows_quarantined"] + i.get("duplicates_dropped", 0)
        for i in manifest["inputs"]
    )


def test_a_ragged_row_and_an_unterminated_quote_are_quarantined_alone(tmp_path: Path) -> None:
    lines = [ROWS[0], "u9,i1,view,2026-01-01T10:00:00Z,extra", ROWS[1], 'u8,"i1,view,2026-01-01T10:00:00Z', *ROWS[2:]]
    m = generic(tmp_path, HEADER + "\n".join(lines) + "\n")
    assert quarantined(tmp_path) == [(3, "ragged_row"), (5, "unterminated_quote")]
    assert lake_rows(tmp_path) == len(ROWS)
    assert m["inputs"][0]["rows_in"] == len(ROWS) + 2 and reconciles(m)


def test_quarantine_lines_are_physical_lines_after_multi_line_fields(tmp_path: Path) -> None:
    header = "user_id,item_id,event_type,ts,note\n"
    body = ROWS[0] + ',"two\nlines"\n' + ROWS[1] + ',"three\r\nmore\nlines"\n' + "u7,,view,2026-01-01T10:00:00Z,\n"
    generic(tmp_path, header + body)
    assert quarantined(tmp_path) == [(7, "missing:item_id")]  # line 7 of the file, its 4th record
    assert lake_rows(tmp_path) == 2


def test_a_quote_closed_mid_field_is_a_bad_quote(tmp_path: Path) -> None:
    generic(tmp_path, HEADER + "\n".join([ROWS[0], 'u1,"i1"x,view,2026-01-01T10:00:00Z', *ROWS[1:]]) + "\n")
    assert quarantined(tmp_path) == [(3, "bad_quote")]


def test_quotes_that_pair_across_lines_swallow_no_valid_row(tmp_path: Path) -> None:
    lines = [ROWS[0], 'u1,"i1,view,2026-01-01T10:00:00Z', ROWS[1], 'u2,i2",view,2026-01-01T10:00:00Z', *ROWS[2:]]
    m = generic(tmp_path, HEADER + "\n".join(lines) + "\n")
    # Read as CSV, lines 3-5 are one record whose item id holds two line breaks: not an id.
    assert quarantined(tmp_path) == [(3, "bad_id")]
    assert reconciles(m)


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("cr-only (classic Mac)", (HEADER + "\n".join(ROWS) + "\n").replace("\n", "\r").encode()),
        ("crlf + byte-order mark", b"\xef\xbb\xbf" + (HEADER + "\n".join(ROWS) + "\n").replace("\n", "\r\n").encode()),
        ("gzip named .csv", gzip.compress((HEADER + "\n".join(ROWS) + "\n").encode())),
        ("no final line break", (HEADER + "\n".join(ROWS)).encode()),
    ],
)
def test_odd_but_valid_files_are_read_whole(tmp_path: Path, name: str, content: bytes) -> None:
    m = generic(tmp_path, content)
    assert lake_rows(tmp_path) == len(ROWS), name
    assert m["quarantine_by_reason"] == {}
    assert set(events(tmp_path / "lake" / "generic")["item_id"]) == {"i0", "i1", "i2"}


def test_gzipped_csv_files_in_the_generic_source(tmp_path: Path) -> None:
    content = gzip.compress((HEADER + "\n".join(ROWS) + "\n").encode())
    generic(tmp_path, content, "events.csv.gz", "data.events.files=[events*.csv.gz]")
    assert lake_rows(tmp_path) == len(ROWS)


def test_rows_that_start_like_a_compressed_stream_are_read_as_text(tmp_path: Path) -> None:
    """Polars decompresses bytes that start like zlib or gzip: a row `x^...` once failed
    the file, and a compressed stream pasted into a row was read as the rows inside it."""
    pasted = zlib.compress(b"u9,i9,view,2026-01-01T10:00:00Z\n").replace(b"\n", b"")
    content = (
        (HEADER + "x^1,i1,view,2026-01-01T10:00:00Z\n").encode() + pasted + ("\n" + "\n".join(ROWS) + "\n").encode()
    )
    manifest = generic(tmp_path, content)
    assert reconciles(manifest)
    assert lake_rows(tmp_path) == len(ROWS) + 1  # the x^1 row, as text
    assert "i9" not in events(tmp_path / "lake" / "generic")["item_id"].to_list()
    assert [line for line, _ in quarantined(tmp_path)] == [3]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ((HEADER + ROWS[0] + "\n").encode("utf-16"), "UTF-16"),
        (b"PK\x03\x04" + b"\x00" * 40, "zip archive"),
        (gzip.compress(HEADER.encode() + ROWS[0].encode() * 2000)[:200], "cannot be read or decompressed"),
        ("user_id,item_id,user_id,event_type,ts\n", "column 'user_id' appears more than once"),
    ],
)
def test_unreadable_files_are_one_error_naming_the_file(tmp_path: Path, content: bytes | str, message: str) -> None:
    with pytest.raises(SourceError, match=message) as caught:
        generic(tmp_path, content)
    assert str(tmp_path / "raw" / "generic" / "events.csv") in str(caught.value)


def test_a_folder_matching_the_file_pattern_is_refused(tmp_path: Path) -> None:
    (tmp_path / "raw" / "generic" / "events-2.csv").mkdir(parents=True)
    with pytest.raises(SourceError, match="events-2.csv: is a folder"):
        generic(tmp_path, HEADER + ROWS[0] + "\n")


def test_one_broken_record_among_many_chunks_costs_only_its_row(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Chunks Polars refuses are re-read record by record; the others stay whole."""
    monkeypatch.setattr(csv_reader, "CHUNK_BYTES", 256)
    rows = [f"u{i},i{i % 7},view,2026-01-0{1 + i % 3}T10:{i % 60:02d}:00Z" for i in range(300)]
    rows[150] += ",extra"
    rows[200] = 'u200,"i1,view,2026-01-01T10:00:00Z'
    m = generic(tmp_path, HEADER + "\n".join(rows) + "\n")
    assert quarantined(tmp_path) == [(152, "ragged_row"), (202, "unterminated_quote")]
    assert lake_rows(tmp_path) + m["inputs"][0]["duplicates_dropped"] == 298 and reconciles(m)


# ------------------------------------------------------------------ JSON lines and Parquet


def test_jsonl_lists_objects_and_broken_lines_are_quarantined_by_physical_line(tmp_path: Path) -> None:
    def line(user: object, item: object) -> str:
        return json.dumps({"user_id": user, "item_id": item, "event_type": "view", "ts": "2026-01-01T10:00:00Z"})

    lines = [line("u1", 1), "", line(["u1"], "i1"), line("u2", {"id": 1}), "not json", line("u3", 1.5), "[1, 2]"]
    generic(tmp_path, "\n".join(lines) + "\n", "e.jsonl", "data.events.format=jsonl", "data.events.files=[e.jsonl]")
    assert quarantined(tmp_path) == [(3, "bad_id"), (4, "bad_id"), (5, "invalid_json"), (7, "invalid_json")]
    assert sorted(events(tmp_path / "lake" / "generic")["item_id"]) == ["1", "1.5"]  # numbers as written


@pytest.mark.parametrize("ids", [[["u1"], ["u2"]], [{"id": "u1"}, {"id": "u2"}]], ids=["list", "struct"])
def test_parquet_id_columns_of_lists_or_structs_are_refused(tmp_path: Path, ids: list) -> None:
    raw = tmp_path / "raw" / "generic"
    raw.mkdir(parents=True)
    pl.DataFrame({"user_id": ids, "item_id": ["i1", "i2"], "event_type": "view", "ts": "2026-01-01"}).write_parquet(
        raw / "e.parquet"
    )
    with pytest.raises(SourceError, match=r"e.parquet: column 'user_id' \(user_id\) holds"):
        generic(tmp_path, b"", "placeholder.txt", "data.events.format=parquet", "data.events.files=[e.parquet]")


def test_parquet_list_columns_beside_the_ids_become_json_text(tmp_path: Path) -> None:
    raw = tmp_path / "raw" / "generic"
    raw.mkdir(parents=True)
    frame = {"user_id": ["u1"], "item_id": ["i1"], "event_type": ["view"], "ts": ["2026-01-01"], "tags": [["a", "b"]]}
    pl.DataFrame(frame).write_parquet(raw / "e.parquet")
    generic(
        tmp_path,
        b"",
        "placeholder.txt",
        "data.events.format=parquet",
        "data.events.files=[e.parquet]",
        "data.events.keep=[tags]",
    )
    assert events(tmp_path / "lake" / "generic")["tags"].to_list() == ['["a","b"]']


# ------------------------------------------------------------------ RetailRocket items


def test_retailrocket_items_files_reconcile_each_on_their_own_rows(tmp_path: Path) -> None:
    d = tmp_path / "raw" / "retailrocket"
    d.mkdir(parents=True)
    (d / "events.csv").write_text("timestamp,visitorid,event,itemid,transactionid\n1433221332117,1,view,10,\n")
    (d / "item_properties_part1.csv").write_text(
        "timestamp,itemid,property,value\n1435460400000,10,categoryid,7\n1435460400000,,categoryid,7\n"
    )
    (d / "item_properties_part2.csv").write_text(
        "timestamp,itemid,property,value\n1431226800000,10,available,1\nyesterday,11,available,1\n"
        "1431226800000,12,790,n1\n1431226800000,12,790,n1,extra\n"
    )
    (d / "category_tree.csv").write_text("categoryid,parentid\n7,1\n7,2\n,3\n")
    m = run(compose("ingest", ["data=retailrocket", f"paths.data_dir={tmp_path}"])).manifest
    counts = {
        Path(i["path"]).name: (i["rows_in"], i["rows_written"], i["rows_quarantined"], i["quarantine_by_reason"])
        for i in m["inputs"]
        if i["table"] == "items"
    }
    assert counts == {
        "item_properties_part1.csv": (2, 1, 1, {"missing:item_id": 1}),
        "item_properties_part2.csv": (4, 2, 2, {"bad_timestamp": 1, "ragged_row": 1}),
        "category_tree.csv": (3, 1, 2, {"duplicate:categoryid": 1, "missing:categoryid": 1}),
    }
    items = pl.read_parquet(tmp_path / "lake" / "retailrocket" / "items.parquet").sort("item_id")
    assert items.select("item_id", "category", "available", "parent_category").rows() == [
        ("10", "7", 1, "1"),
        ("12", None, None, None),
    ]


# ------------------------------------------------------------------ the CSV reader, on arbitrary bytes

TRICKY_ROWS = [
    b"u1,i1,view,2026-01-01T10:00:00Z",
    b"u2,i2,purchase,2026-01-02 10:00:00+02",
    b"u3,i1,view,2026-01-01T10:00:00Z,extra,fields",
    b'"u4,i1,view,2026-01-01T10:00:00Z',
    b'u5,"i""1",view,2026-01-01',
    b'u6,"i1"x,view,2026-01-01',
    b'u7,"multi',
    b'line",view,2026-01-01',
    b"u8,i\x001,view,2026-01-01",
    b"u9,caf\xe9,view,2026-01-01",
    b"\xef\xbb\xbf",
    b'"',
    b",,,",
    b"",
    b"u10," + b"x" * 3000 + b",view,2026-01-01",
]
row_bytes = st.one_of(st.binary(max_size=40), st.sampled_from(TRICKY_ROWS))


def _physical_records(body: bytes, eol: bytes) -> int:
    """Records of a body without quotes: one per line, a final line break ends the last one."""
    return 0 if not body else body.count(eol) + (0 if body.endswith(eol) else 1)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(row_bytes, max_size=10), st.sampled_from([b"\n", b"\r\n", b"\r"]), st.booleans())
def test_arbitrary_rows_after_a_valid_header_never_crash_and_reconcile(
    rows: list[bytes], eol: bytes, final_break: bool
) -> None:
    body = eol.join(rows) + (eol if final_break and rows else b"")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        try:
            m = generic(root, HEADER.encode().replace(b"\n", eol) + body, "events.csv", "validation.max_bad_fraction=1")
        except RecsysError as exc:  # a clean refusal: one line naming the file, never a raw value
            assert "\n" not in str(exc) and "events.csv" in str(exc)
            return
        (entry,) = m["inputs"]
        assert entry["rows_in"] == entry["rows_written"] + entry["rows_quarantined"] + entry["duplicates_dropped"]
        lines = body.count(b"\n" if b"\n" in HEADER.encode().replace(b"\n", eol) + body else b"\r") + 2
        if (root / "lake" / "generic" / "quarantine").exists():
            seen = pl.read_parquet(root / "lake" / "generic" / "quarantine")["_line"]
            assert seen.is_unique().all() and seen.is_between(2, lines).all()
        if b'"' not in body and eol != b"\r":
            assert entry["rows_in"] == _physical_records(body, b"\n")


def test_the_cli_reads_a_hostile_csv_without_a_traceback(tmp_path: Path) -> None:
    """The real `recsys ingest`, in a subprocess: broken records cost their row, never the run."""
    raw = tmp_path / "raw" / "generic"
    raw.mkdir(parents=True)
    rows = [
        *(r for r in TRICKY_ROWS if r),
        *(f"u{i},i{i % 3},view,2026-01-01T1{i % 10}:00:00Z".encode() for i in range(40)),
    ]
    (raw / "events.csv").write_bytes(HEADER.encode() + b"\r\n".join(rows) + b"\r\n")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "recsys_cli",
            "ingest",
            "data=generic",
            f"paths.data_dir={tmp_path}",
            "validation.max_bad_fraction=0.5",
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "RECSYS_DEBUG": ""},
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    m = json.loads((tmp_path / "lake" / "generic" / "manifest.json").read_text())
    (entry,) = m["inputs"]
    assert entry["rows_in"] == entry["rows_written"] + entry["rows_quarantined"] + entry["duplicates_dropped"]
    assert {"ragged_row", "unterminated_quote", "bad_quote", "bad_id", "invalid_utf8"} <= set(m["quarantine_by_reason"])


def test_a_line_longer_than_a_chunk_bound_is_refused_not_buffered(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match=r"events.csv: a line is longer than 16 MiB"):
        generic(tmp_path, HEADER.encode() + ROWS[0].encode() + b"\n" + b"x" * (17 << 20))


@pytest.mark.parametrize("compress", [lzma.compress, bz2.compress], ids=["xz", "bzip2"])
def test_xz_and_bzip2_files_are_read_as_they_stream(tmp_path: Path, compress: Callable[[bytes], bytes]) -> None:
    generic(tmp_path, compress((HEADER + "\n".join(ROWS) + "\n").encode()))
    assert lake_rows(tmp_path) == len(ROWS)


@pytest.mark.parametrize(("fmt", "name"), [("parquet", "items.parquet"), ("jsonl", "items.jsonl")])
def test_list_or_object_item_ids_in_an_items_table_are_quarantined(tmp_path: Path, fmt: str, name: str) -> None:
    raw = tmp_path / "raw" / "generic"
    raw.mkdir(parents=True)
    if fmt == "parquet":
        pl.DataFrame({"item_id": [["i1"], ["i2"]], "price": [1.0, 2.0]}).write_parquet(raw / name)
    else:
        (raw / name).write_text('{"item_id": "i1", "price": 1}\n{"item_id": {"id": "i2"}, "price": 2}\n')
    m = generic(
        tmp_path,
        HEADER + "\n".join(ROWS) + "\n",
        "events.csv",
        f"data.items.format={fmt}",
        f"data.items.files=[{name}]",
    )
    items = pl.read_parquet(tmp_path / "lake" / "generic" / "items.parquet")
    assert not items["item_id"].str.contains(r"[\[{]").any()
    assert m["quarantine_by_reason"]["bad_id"] == (2 if fmt == "parquet" else 1)


@pytest.mark.parametrize("column", ["_line", "_ragged", "_file", "table", "ts__p"])
def test_a_raw_column_named_like_a_lineage_column_is_refused(tmp_path: Path, column: str) -> None:
    with pytest.raises(SourceError, match=f"column '{column}' has a name ingest uses itself"):
        generic(tmp_path, f"user_id,item_id,event_type,ts,{column}\n{ROWS[0]},x\n")


def test_spaces_around_header_names_are_no_part_of_them(tmp_path: Path) -> None:
    generic(tmp_path, "user_id, item_id , event_type,ts\n" + "\n".join(ROWS) + "\n")
    assert lake_rows(tmp_path) == len(ROWS)
