"""Each source maps its own layout onto the contract."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from recsys_cli.config import compose
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
