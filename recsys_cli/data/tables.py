"""Items and users through ingest: small tables, read whole, validated row by
row with the same quarantine rules as events."""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from recsys_cli.data.expressions import has_invalid_utf8, parse_number, parse_timestamp
from recsys_cli.data.schema import Col, Timestamp
from recsys_cli.data.sources.base import TimestampSpec


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

    Duplicate keys keep their first row; later ones are quarantined, not merged,
    because two different descriptions of one product is a data problem to see.
    """
    if Col.LINE not in df.columns:
        df = df.with_row_index(Col.LINE, offset=1)
    texts = [c for c, t in df.schema.items() if t == pl.String]
    parsed = df.with_columns(
        *(_typed(df, c, t).alias(c + "__p") for c, t in rules.numbers.items() if c in df.columns),
        *(_typed(df, c, Timestamp, ts).alias(c + "__p") for c in rules.timestamps if c in df.columns),
    )
    checks: list[tuple[pl.Expr, str]] = [
        (has_invalid_utf8(texts), "invalid_utf8"),
        (pl.col(rules.key).is_null(), f"missing:{rules.key}"),
        (~pl.col(rules.key).is_first_distinct(), f"duplicate:{rules.key}"),
    ]
    for c in [*rules.numbers, *rules.timestamps]:
        if c in df.columns:
            kind = "bad_timestamp" if c in rules.timestamps else "bad_number"
            checks.append((pl.col(c).is_not_null() & pl.col(c + "__p").is_null(), f"{kind}:{c}"))
    for c in rules.non_negative:
        if c in df.columns:
            checks.append((pl.col(c + "__p") < 0, f"negative:{c}"))
    reason = pl.coalesce([pl.when(cond.fill_null(False)).then(pl.lit(code)) for cond, code in checks])
    parsed = parsed.with_columns(reason.alias(Col.REASON))
    typed = [c for c in df.columns if c + "__p" in parsed.columns]
    good = (
        parsed.filter(pl.col(Col.REASON).is_null())
        .with_columns(pl.col(c + "__p").alias(c) for c in typed)
        .drop(*(c + "__p" for c in typed), Col.REASON, Col.LINE)
    )
    bad = parsed.filter(pl.col(Col.REASON).is_not_null()).select(
        pl.lit(file).alias(Col.FILE),
        pl.col(Col.LINE).cast(pl.UInt64),
        pl.col(Col.REASON),
        pl.lit(rules.name).alias(Col.TABLE),
        *(_as_text(c, df.schema[c]) for c in df.columns if c != Col.LINE),
    )
    return good, bad


def _typed(df: pl.DataFrame, column: str, dtype: pl.DataType, ts: TimestampSpec | None = None) -> pl.Expr:
    source = df.schema[column]
    if source == pl.String:
        expr = pl.col(column).str.strip_chars()
        return parse_timestamp(expr, ts) if ts is not None else parse_number(expr, dtype)
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
