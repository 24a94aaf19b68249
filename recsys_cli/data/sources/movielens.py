"""MovieLens-100K in either layout: RecBole's atomic files (`ml-100k.inter`, as
shipped in the recbole wheel, see scripts/fetch_movielens100k.sh) or GroupLens'
original `u.data`/`u.user`/`u.item`.

Ratings become `rating` events whose `value` is the star rating.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import polars as pl

from recsys_cli.data.read_errors import polars_error_summary
from recsys_cli.data.schema import Col
from recsys_cli.data.sources.base import TableSpec, TimestampSpec
from recsys_cli.data.sources.tabular import TabularSource
from recsys_cli.errors import SourceError

GENRES = (
    "unknown",
    "Action",
    "Adventure",
    "Animation",
    "Children's",
    "Comedy",
    "Crime",
    "Documentary",
    "Drama",
    "Fantasy",
    "Film-Noir",
    "Horror",
    "Musical",
    "Mystery",
    "Romance",
    "Sci-Fi",
    "Thriller",
    "War",
    "Western",
)
AGE_EDGES = (18, 25, 35, 45, 55)
AGE_LABELS = ("<18", "18-24", "25-34", "35-44", "45-54", "55+")

RATING_SCALE = (0.5, 5.0)  # MovieLens stars: whole in 100K, halves in the larger releases

RECBOLE_EVENTS = TableSpec(
    files=("ml-100k.inter",),
    separator="\t",
    quote_char=None,
    columns={
        Col.USER: "user_id:token",
        Col.ITEM: "item_id:token",
        Col.VALUE: "rating:float",
        Col.TS: "timestamp:float",
    },
    constants={Col.EVENT: "rating"},
    timestamp=TimestampSpec(unit="s"),
    rating_scale=RATING_SCALE,
)
ORIGINAL_EVENTS = TableSpec(
    files=("u.data",),
    separator="\t",
    quote_char=None,
    has_header=False,
    raw_columns=(Col.USER, Col.ITEM, Col.VALUE, Col.TS),
    constants={Col.EVENT: "rating"},
    timestamp=TimestampSpec(unit="s"),
    rating_scale=RATING_SCALE,
)


class MovieLensSource(TabularSource):
    def __init__(self, name: str, path: str | Path, description: str = "", **_: Any) -> None:
        super().__init__(name, path, events=RECBOLE_EVENTS, description=description)
        if (self.path / "u.data").exists() and not (self.path / "ml-100k.inter").exists():
            self.events = ORIGINAL_EVENTS

    @property
    def original(self) -> bool:
        return self.events is ORIGINAL_EVENTS

    def table_files(self) -> dict[str, list[Path]]:
        names = (
            {"items": "u.item", "users": "u.user"}
            if self.original
            else {"items": "ml-100k.item", "users": "ml-100k.user"}
        )
        return {t: [self.path / n] for t, n in names.items() if (self.path / n).exists()}

    def items(self) -> tuple[pl.DataFrame, str] | None:
        files = self.table_files().get("items")
        if not files:
            return None
        path = files[0]
        if self.original:
            # u.item is Latin-1 and pipe-separated, with one 0/1 flag column per genre.
            text = path.read_bytes().decode("latin-1")
            cols = ["item_id", "title", "release_date", "video_release", "url", *GENRES]
            raw = _read_csv(
                path,
                io.StringIO(text),
                separator="|",
                has_header=False,
                new_columns=cols,
                infer_schema=False,
                quote_char=None,
            )
            genres = pl.concat_list(pl.when(pl.col(g) == "1").then(pl.lit(g)) for g in GENRES).list.drop_nulls()
            df = raw.select(
                "item_id",
                "title",
                genres.alias("genres"),
                pl.col("release_date").str.slice(-4).cast(pl.Int32, strict=False).alias("release_year"),
            )
        else:
            raw = _read_tsv(path)
            df = raw.select(
                pl.col("item_id:token").alias("item_id"),
                pl.col("movie_title:token_seq").alias("title"),
                pl.col("class:token_seq").str.split(" ").alias("genres"),
                pl.col("release_year:token").cast(pl.Int32, strict=False).alias("release_year"),
            )
        df = df.with_columns(pl.col("genres").list.first().alias(Col.CATEGORY))
        return df.with_row_index(Col.LINE, offset=1 if self.original else 2), str(path)

    def users(self) -> tuple[pl.DataFrame, str] | None:
        files = self.table_files().get("users")
        if not files:
            return None
        path = files[0]
        if self.original:
            cols = ["user_id", "age", "gender", "occupation", "zip_code"]
            df = _read_csv(path, path, separator="|", has_header=False, new_columns=cols, infer_schema=False)
        else:
            df = _read_tsv(path).rename(lambda c: c.split(":")[0])
        age = pl.col("age").cast(pl.Int32, strict=False)
        df = df.with_columns(age, age_bucket(age).alias("age_bucket"))
        return df.with_row_index(Col.LINE, offset=1 if self.original else 2), str(path)


def age_bucket(age: pl.Expr) -> pl.Expr:
    """Age in years -> the bucket labels the synthetic shop uses too (under 18 apart)."""
    expr: Any = pl.when(age < AGE_EDGES[0]).then(pl.lit(AGE_LABELS[0]))
    for edge, label in zip(AGE_EDGES[1:], AGE_LABELS[1:-1], strict=True):
        expr = expr.when(age < edge).then(pl.lit(label))
    return expr.when(age.is_not_null()).then(pl.lit(AGE_LABELS[-1]))


def _read_tsv(path: Path) -> pl.DataFrame:
    return _read_csv(path, path, separator="\t", infer_schema=False, quote_char=None)


def _read_csv(path: Path, source: Path | io.StringIO, **options: Any) -> pl.DataFrame:
    """A small MovieLens table, or one line naming the file (never the reader's text: it quotes cells)."""
    try:
        return pl.read_csv(source, **options)
    except pl.exceptions.PolarsError as exc:
        raise SourceError(f"{path}: cannot be read as a MovieLens table: {polars_error_summary(exc)}") from exc
