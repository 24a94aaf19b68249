"""Items and users through ingest: small tables, read whole, validated row by
row with the same quarantine rules as events."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from recsys_cli.data.expressions import bad_id, has_invalid_utf8, parse_number, parse_timestamp, trimmed
from recsys_cli.data.schema import Col, Timestamp
from recsys_cli.data.sources.base import RAGGED, TableReport, TimestampSpec


@dataclass(frozen=True)
class TableRules:
    """Typed columns of a table and which must not be negative."""

    name: str
    key: str
    numbers: dict[str, pl.DataType]
    timestamps: tuple[str, ...]
    non_negative: tuple[str, ...]


ITEM_RULES = TableRules(
    "items", Col.ITEM, {Col.PRICE: pl.Float64(), Col.STOCK: pl.Int64()}, (Col.LAUNCHED_AT,), (Col.PRICE, Col.STOCK)
)
USER_RULES = TableRules("users", Col.USER, {}, (Col.SIGNUP_AT,), ())


def prepare_table(
    df: pl.DataFrame, rules: TableRules, ts: TimestampSpec, file: str
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Split a raw table into (valid typed rows, quarantined raw rows with reasons).

    Text is trimmed and empty-after-trim is missing, as in events (` 42 ` is `42`).
    Duplicate keys keep their first row; later ones are quarantined, not merged,
    because two different descriptions of one product is a data problem to see.
    A row the reader could not split (`RAGGED`) is quarantined with the reader's
    reason; rows carry their own `Col.FILE` where the table has several files.
    Prices and stock that are not finite, implausibly large (`parse_number`) or
    negative are quarantined, not nulled: the row claims a value we cannot use.
    """
    df = _with_lineage(df, file)
    texts = [c for c, t in df.schema.items() if t == pl.String and c not in (Col.FILE, RAGGED)]
    df = df.with_columns(trimmed(c) for c in texts)
    parsed = df.with_columns(
        *(_typed(df, c, t).alias(c + "__p") for c, t in rules.numbers.items() if c in df.columns),
        *(_typed(df, c, Timestamp, ts).alias(c + "__p") for c in rules.timestamps if c in df.columns),
    )
    key_is_text = df.schema[rules.key] == pl.String
    checks: list[tuple[pl.Expr, str | pl.Expr]] = [
        (pl.col(RAGGED).is_not_null(), pl.col(RAGGED)),
        (has_invalid_utf8(texts), "invalid_utf8"),
        (pl.col(rules.key).is_null(), f"missing:{rules.key}"),
        (bad_id(rules.key) if key_is_text else pl.lit(False), "bad_id"),
        (~pl.col(rules.key).is_first_distinct(), f"duplicate:{rules.key}"),
    ]
    for c in [*rules.numbers, *rules.timestamps]:
        if c in df.columns:
            kind = "bad_timestamp" if c in rules.timestamps else "bad_number"
            checks.append((pl.col(c).is_not_null() & pl.col(c + "__p").is_null(), f"{kind}:{c}"))
    for c in rules.non_negative:
        if c in df.columns:
            checks.append((pl.col(c + "__p") < 0, f"negative:{c}"))
    parsed = parsed.with_columns(_first_reason(checks).alias(Col.REASON))
    typed = [c for c in df.columns if c + "__p" in parsed.columns]
    good = (
        parsed.filter(pl.col(Col.REASON).is_null())
        .with_columns(pl.col(c + "__p").alias(c) for c in typed)
        .drop(*(c + "__p" for c in typed), Col.REASON, Col.LINE, RAGGED)
    )
    bad = parsed.filter(pl.col(Col.REASON).is_not_null()).select(
        pl.col(Col.FILE),
        pl.col(Col.LINE).cast(pl.UInt64),
        pl.col(Col.REASON),
        pl.lit(rules.name).alias(Col.TABLE),
        *(_as_text(c, df.schema[c]) for c in df.columns if c not in (Col.LINE, Col.FILE, RAGGED)),
    )
    return good, bad


def table_inputs(
    files: Sequence[Path], good: pl.DataFrame, bad: pl.DataFrame, report: TableReport | None
) -> list[dict[str, Any]]:
    """The manifest's entry of each input file of a table, counted on its own rows
    (`Col.FILE`): rows_in = rows_written + rows_quarantined. A derived table's
    records per file come from the source's `report`."""
    out = []
    for path in map(str, files):
        rejected = bad.filter(pl.col(Col.FILE) == path)
        if report is not None:
            rows_in = report.records.get(path, 0)
            written = rows_in - rejected.height
        else:
            written = good.filter(pl.col(Col.FILE) == path).height
            rows_in = written + rejected.height
        reasons = dict(rejected.group_by(Col.REASON).len().sort(Col.REASON).iter_rows())
        out.append(
            {
                "path": path,
                "rows_in": rows_in,
                "rows_written": written,
                "rows_quarantined": rejected.height,
                "quarantine_by_reason": reasons,
            }
        )
    return out


def _with_lineage(df: pl.DataFrame, file: str) -> pl.DataFrame:
    """Add what a source did not give: line numbers, the file, an empty reader verdict."""
    if Col.LINE not in df.columns:
        df = df.with_row_index(Col.LINE, offset=1)
    if Col.FILE not in df.columns:
        df = df.with_columns(pl.lit(file).alias(Col.FILE))
    if RAGGED not in df.columns:
        df = df.with_columns(pl.lit(None, dtype=pl.String).alias(RAGGED))
    return df


def _first_reason(checks: list[tuple[pl.Expr, str | pl.Expr]]) -> pl.Expr:
    return pl.coalesce(
        [pl.when(cond.fill_null(False)).then(pl.lit(code) if isinstance(code, str) else code) for cond, code in checks]
    )


def _typed(df: pl.DataFrame, column: str, dtype: pl.DataType, ts: TimestampSpec | None = None) -> pl.Expr:
    source = df.schema[column]
    if source == pl.String:
        expr = pl.col(column).str.strip_chars()
        return parse_timestamp(expr, ts) if ts is not None else parse_number(expr, dtype)
    if source.is_numeric():  # typed input (Parquet): the same finite, plausible range as text
        return parse_number(pl.col(column).cast(pl.String), dtype)
    if ts is not None and source.is_temporal():
        col = pl.col(column)
        tz = getattr(source, "time_zone", None)
        col = col.dt.replace_time_zone("UTC") if tz is None and isinstance(source, pl.Datetime) else col
        return col.cast(Timestamp, strict=False)
    return pl.col(column).cast(dtype, strict=False)


def _as_text(column: str, dtype: pl.DataType) -> pl.Expr:
    if isinstance(dtype, pl.List):
        return pl.col(column).cast(pl.List(pl.String)).list.join("|")
    return pl.col(column).cast(pl.String)
