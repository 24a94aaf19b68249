"""RetailRocket-style e-commerce logs (the Kaggle "retailrocket" layout).

`events.csv`: timestamp (epoch ms), visitorid, event (view/addtocart/transaction),
itemid, transactionid. Items come from `item_properties*.csv`, a log of
(timestamp, itemid, property, value) snapshots: we keep each item's latest
`categoryid` and `available`, its first snapshot as `launched_at` (the best
available proxy), and the parent category from `category_tree.csv`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import polars as pl

from recsys_cli.data.schema import Col
from recsys_cli.data.sources.base import TableSpec, TimestampSpec
from recsys_cli.data.sources.tabular import TabularSource

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


class RetailRocketSource(TabularSource):
    def __init__(self, name: str, path: str | Path, description: str = "", **_: Any) -> None:
        super().__init__(name, path, events=EVENTS, description=description)

    def table_files(self) -> dict[str, list[Path]]:
        props = sorted(self.path.glob("item_properties*.csv"))
        tree = [self.path / "category_tree.csv"] if (self.path / "category_tree.csv").exists() else []
        return {"items": props + tree} if props else {}

    def items(self) -> tuple[pl.DataFrame, str] | None:
        props = sorted(self.path.glob("item_properties*.csv"))
        if not props:
            return None
        scan = pl.concat([pl.scan_csv(p, infer_schema=False) for p in props])
        scan = scan.with_columns(pl.col("timestamp").cast(pl.Int64, strict=False))
        first_seen = scan.group_by("itemid").agg(pl.col("timestamp").min().alias("first_ms"))
        latest = (
            scan.filter(pl.col("property").is_in(["categoryid", "available"]))
            .sort("timestamp")
            .group_by("itemid", "property")
            .agg(pl.col("value").last())
            .collect()
            .pivot(on="property", index="itemid", values="value")
        )
        for missing in {"categoryid", "available"} - set(latest.columns):
            latest = latest.with_columns(pl.lit(None, dtype=pl.String).alias(missing))
        df = (
            first_seen.collect()
            .join(latest, on="itemid", how="left")
            .select(
                pl.col("itemid").alias(Col.ITEM),
                pl.col("categoryid").alias(Col.CATEGORY),
                pl.col("available").cast(pl.Int64, strict=False).alias("available"),
                pl.from_epoch("first_ms", time_unit="ms").dt.replace_time_zone("UTC").alias(Col.LAUNCHED_AT),
            )
        )
        tree_path = self.path / "category_tree.csv"
        if tree_path.exists():
            tree = pl.read_csv(tree_path, infer_schema=False).select(
                pl.col("categoryid").alias(Col.CATEGORY), pl.col("parentid").alias("parent_category")
            )
            df = df.join(tree, on=Col.CATEGORY, how="left")
        return df.sort(Col.ITEM), ",".join(str(p) for p in props)
