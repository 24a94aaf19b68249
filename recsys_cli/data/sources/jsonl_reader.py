"""A streaming JSON-lines reader that sets broken lines aside instead of failing the file.

Polars' NDJSON reader stops at the first line that is not JSON, skips blank lines
without counting them, infers one type per key (an id column mixing `1` and `1.5`
becomes `1.0`), and serialises lists and objects as text. This reader keeps every
value as the text JSON wrote it (`json_path_match`), numbers each record by its
physical line, marks a line that is not a JSON object `invalid_json`, and skips
blank lines (they are no records). Lists and objects stay JSON text; where one sits
in an id column, `base.map_columns` rejects the row as `bad_id`.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import polars as pl

from recsys_cli.data.schema import Col
from recsys_cli.data.sources.csv_reader import (
    BOM,
    READ_ERROR,
    mark_last,
    open_raw,
    read_blocks,
    read_head,
    refuse_lineage_names,
    register_batches,
    split_chunks,
)
from recsys_cli.errors import SourceError

SAMPLE_BYTES = 4 << 20  # keys are those of the objects in the file's first 4 MiB (Polars infers from a sample too)
RAW = "__json"


def jsonl_keys(path: Path) -> list[str]:
    """Keys of the objects in the file's first lines, in order of first appearance."""
    head = read_head(path, SAMPLE_BYTES).removeprefix(BOM)
    if not head.strip():
        raise SourceError(f"{path}: file is empty (no rows)")
    keys: dict[str, None] = {}
    for line in head.split(b"\n")[:-1] if len(head) == SAMPLE_BYTES else head.split(b"\n"):
        try:
            value = json.loads(line.decode("utf-8", errors="replace")) if line.strip() else None
        except ValueError:
            continue
        if isinstance(value, dict):
            keys.update(dict.fromkeys(value))
    if not keys:
        raise SourceError(f"{path}: no line of the file's start is a JSON object (is it JSON lines?)")
    refuse_lineage_names(path, list(keys))
    return list(keys)


def scan_jsonl(path: Path) -> pl.LazyFrame:
    """Every non-blank line of `path` as text columns, with `Col.LINE` and `READ_ERROR`."""
    keys = jsonl_keys(path)
    schema = {**{k: pl.String() for k in keys}, Col.LINE: pl.UInt64(), READ_ERROR: pl.String()}
    return register_batches(lambda: _batches(path, keys), schema, f"jsonl {path}")


def _batches(path: Path, keys: list[str]) -> Iterator[pl.DataFrame]:
    line = 1
    with open_raw(path) as fh:
        for i, (chunk, _) in enumerate(mark_last(split_chunks(read_blocks(fh, path), b"\n", None, path))):
            yield parse_lines(chunk.removeprefix(BOM) if i == 0 else chunk, line, keys)
            line += chunk.count(b"\n")


def parse_lines(chunk: bytes, first_line: int, keys: list[str]) -> pl.DataFrame:
    """One chunk of whole lines -> one row per non-blank line."""
    lines = chunk.decode("utf-8", errors="replace").split("\n")
    if chunk.endswith(b"\n"):
        lines.pop()
    raw = pl.col(RAW)
    is_object = raw.str.strip_chars().str.starts_with("{") & raw.str.json_path_match("$").is_not_null()
    return (
        pl.DataFrame({RAW: lines})
        .with_columns((pl.int_range(pl.len(), dtype=pl.UInt64) + first_line).alias(Col.LINE))
        .filter(raw.str.strip_chars().str.len_bytes() > 0)
        .select(
            *(pl.when(is_object).then(raw.str.json_path_match(_path(k))).alias(k) for k in keys),
            Col.LINE,
            pl.when(~is_object).then(pl.lit("invalid_json")).alias(READ_ERROR),
        )
    )


def _path(key: str) -> str:
    return "$['" + key.replace("\\", "\\\\").replace("'", "\\'") + "']"


def is_json_container(expr: pl.Expr) -> pl.Expr:
    """Text that is a JSON list or object: what the reader leaves where a value was one."""
    return expr.str.contains(r"(?s)^\s*(\[.*\]|\{.*\})\s*$")
