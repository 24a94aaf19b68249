"""RetailRocket-style e-commerce logs (the Kaggle "retailrocket" layout).

`events.csv`: timestamp (epoch ms), visitorid, event (view/addtocart/transaction),
itemid, transactionid. Items come from `item_properties*.csv`, a log of
(timestamp, itemid, property, value) snapshots: we keep each item's latest
`categoryid` and `available`, its first snapshot as `launched_at` (the best
available proxy), and the parent category from `category_tree.csv`.

Items are derived, not read one per record, so the manifest counts each items
input file by its own records (`table_report`): snapshots or tree rows read, used,
and set aside with a reason (unreadable, no item id, a timestamp that is no epoch).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import polars as pl

from recsys_cli.data.expressions import bad_id, has_invalid_utf8, missing, trimmed
from recsys_cli.data.schema import Col
from recsys_cli.data.sources.base import RAGGED, TableReport, TableSpec, TimestampSpec, read_small_table, scan_raw
from recsys_cli.data.sources.tabular import TabularSource
from recsys_cli.errors import SourceError

EVENTS = TableSpec(
    files=("events.csv",),
    columns={
        Col.TS: "timestamp",
        Col.USER: "visitorid",
        Col.EVENT: "event",
        Col.ITEM: "itemid",
        "transaction_id": "transactionid",
    },
    event_types={"addtocart": "add_to_cart", "transaction": "purchase"},
    timestamp=TimestampSpec(unit="ms"),
    keep=("transaction_id",),
)


PROPERTIES = TableSpec(files=("item_properties*.csv",))
TREE = TableSpec(files=("category_tree.csv",))


class RetailRocketSource(TabularSource):
    def __init__(self, name: str, path: str | Path, description: str = "", **_: Any) -> None:
        super().__init__(name, path, events=EVENTS, description=description)
        self._report: TableReport | None = None

    def table_files(self) -> dict[str, list[Path]]:
        props = PROPERTIES.resolve(self.path)
        return {"items": props + TREE.resolve(self.path)} if props else {}

    def table_report(self, table: str) -> TableReport | None:
        """Items are derived from property snapshots: records and rejects per input file."""
        return self._report if table == "items" else None

    def items(self) -> tuple[pl.DataFrame, str] | None:
        props = PROPERTIES.resolve(self.path)
        if not props:
            return None
        scan = pl.concat([scan_raw(p, PROPERTIES).with_columns(pl.lit(str(p)).alias(Col.FILE)) for p in props])
        scan = scan.with_columns(
            _property_reason().alias(Col.REASON), pl.col("timestamp").str.strip_chars().cast(pl.Int64, strict=False)
        )
        good = scan.filter(pl.col(Col.REASON).is_null()).with_columns(trimmed("itemid"))
        first_seen = good.group_by("itemid").agg(pl.col("timestamp").min().alias("first_ms"))
        latest = (
            good.filter(pl.col("property").is_in(["categoryid", "available"]))
            .sort("timestamp", maintain_order=True)
            .group_by("itemid", "property")
            .agg(pl.col("value").last())
        )
        rejected = scan.filter(pl.col(Col.REASON).is_not_null()).select(*REJECTED)
        records = scan.group_by(Col.FILE).len()
        first, last, bad, counts = pl.collect_all([first_seen, latest, rejected, records], engine="streaming")
        df = _items(first, last.pivot(on="property", index="itemid", values="value"))
        per_file = {str(p): 0 for p in props} | dict(counts.iter_rows())
        for tree_path in TREE.resolve(self.path):
            tree, tree_bad = _category_tree(tree_path)
            df = df.join(tree, on=Col.CATEGORY, how="left")
            bad = pl.concat([bad, tree_bad], how="diagonal_relaxed")
            per_file[str(tree_path)] = tree.height + tree_bad.height
        self._report = TableReport(per_file, bad.with_columns(pl.lit("items").alias(Col.TABLE)))
        return df.sort(Col.ITEM), ",".join(str(p) for p in props)


REJECTED = [pl.col(Col.FILE), pl.col(Col.LINE), pl.col(Col.REASON), *(pl.col(c) for c in ("itemid", "property"))]


def _property_reason() -> pl.Expr:
    """Why a property snapshot cannot be used, as in events: the first rule it breaks."""
    stamp = pl.col("timestamp").str.strip_chars().cast(pl.Int64, strict=False)
    rules: list[tuple[pl.Expr, str | pl.Expr]] = [
        (pl.col(RAGGED).is_not_null(), pl.col(RAGGED)),
        (has_invalid_utf8(["timestamp", "itemid", "property"]), "invalid_utf8"),
        (trimmed("itemid").is_null(), "missing:item_id"),
        (bad_id("itemid"), "bad_id"),
        (missing("property"), "missing:property"),
        (pl.col("timestamp").is_null(), "missing:timestamp"),
        (stamp.is_null(), "bad_timestamp"),
    ]
    return pl.coalesce([pl.when(c.fill_null(False)).then(pl.lit(r) if isinstance(r, str) else r) for c, r in rules])


def _items(first: pl.DataFrame, latest: pl.DataFrame) -> pl.DataFrame:
    for column in {"categoryid", "available"} - set(latest.columns):
        latest = latest.with_columns(pl.lit(None, dtype=pl.String).alias(column))
    return first.join(latest, on="itemid", how="left").select(
        pl.col("itemid").alias(Col.ITEM),
        pl.col("categoryid").str.strip_chars().alias(Col.CATEGORY),
        pl.col("available").str.strip_chars().cast(pl.Int64, strict=False).alias("available"),
        pl.from_epoch("first_ms", time_unit="ms").dt.replace_time_zone("UTC").alias(Col.LAUNCHED_AT),
        pl.lit(None, dtype=pl.String).alias(Col.FILE),  # derived from several records
    )


def _category_tree(path: Path) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(category -> parent) rows, and the rows set aside: unreadable, no category, repeated."""
    raw = read_small_table(path, TREE)
    if "categoryid" not in raw.columns or "parentid" not in raw.columns:
        raise SourceError(f"{path}: missing required column(s) categoryid, parentid")
    df = raw.with_columns(trimmed("categoryid"), trimmed("parentid"))
    reason = pl.coalesce(
        pl.when(pl.col(RAGGED).is_not_null()).then(pl.col(RAGGED)),
        pl.when(pl.col("categoryid").is_null()).then(pl.lit("missing:categoryid")),
        pl.when(~pl.col("categoryid").is_first_distinct()).then(pl.lit("duplicate:categoryid")),
    )
    df = df.with_columns(reason.alias(Col.REASON))
    good = df.filter(pl.col(Col.REASON).is_null()).select(
        pl.col("categoryid").alias(Col.CATEGORY), pl.col("parentid").alias("parent_category")
    )
    bad = df.filter(pl.col(Col.REASON).is_not_null()).select(Col.FILE, Col.LINE, Col.REASON, "categoryid", "parentid")
    return good, bad
