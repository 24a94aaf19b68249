"""Generic source: CSV, JSON lines or Parquet files plus a column mapping in config.

MovieLens and RetailRocket are tabular sources with a little extra reading of
their own; the synthetic shop is a plain one (see `conf/data/`).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import polars as pl

from recsys_cli.data.schema import EVENTS_REQUIRED, Col
from recsys_cli.data.sources.base import (
    RAGGED,
    TableReport,
    TableSpec,
    TimestampSpec,
    map_columns,
    read_small_table,
    scan_raw,
)
from recsys_cli.data.sources.jsonl_reader import is_json_container
from recsys_cli.errors import SourceError


def as_spec(value: TableSpec | Mapping[str, Any] | None) -> TableSpec | None:
    """Build a `TableSpec` from its config mapping (Hydra passes plain dicts)."""
    if value is None or isinstance(value, TableSpec):
        return value
    fields = dict(value)
    fields["timestamp"] = TimestampSpec(**dict(fields.get("timestamp") or {}))
    return TableSpec(**fields)


class TabularSource:
    """Raw files under `path`, mapped to the contract by `events`, `items`, `users` specs."""

    def __init__(
        self,
        name: str,
        path: str | Path,
        events: TableSpec | Mapping[str, Any],
        items: TableSpec | Mapping[str, Any] | None = None,
        users: TableSpec | Mapping[str, Any] | None = None,
        description: str = "",
    ) -> None:
        self.name = name
        self.path = Path(path)
        spec = as_spec(events)
        if spec is None:
            raise SourceError(f"source '{name}': no events table configured")
        self.events: TableSpec = spec
        self.items_spec = as_spec(items)
        self.users_spec = as_spec(users)
        self.description = description

    def event_files(self) -> list[Path]:
        if not self.path.exists():
            raise SourceError(f"{self.path}: data folder not found for source '{self.name}'")
        files = self.events.resolve(self.path)
        if not files:
            raise SourceError(f"{self.path}: no event files match {list(self.events.files)}")
        return files

    def table_files(self) -> dict[str, list[Path]]:
        """Items and users files, for the manifest's input digests."""
        out = {}
        for name, spec in (("items", self.items_spec), ("users", self.users_spec)):
            if spec is not None:
                out[name] = spec.resolve(self.path)
        return out

    def scan_events(self, path: Path) -> pl.LazyFrame:
        """Contract-named text columns of one event file, with `_line`."""
        return map_columns(scan_raw(path, self.events), self.events, path, EVENTS_REQUIRED)

    def events_spec(self, path: Path) -> TableSpec:
        """How `path`'s events are written: one spec for every file of a tabular source."""
        return self.events

    def pseudonymous(self, path: Path) -> bool:
        """False: a source's own files hold raw user ids (see `live_events` for files that do not)."""
        return False

    def items(self) -> tuple[pl.DataFrame, str] | None:
        return self._table(self.items_spec, Col.ITEM)

    def users(self) -> tuple[pl.DataFrame, str] | None:
        return self._table(self.users_spec, Col.USER)

    def table_report(self, table: str) -> TableReport | None:
        """None: every row of `items()`/`users()` is one record of its `Col.FILE`."""
        return None

    def table_timestamp(self, table: str) -> TimestampSpec:
        spec = self.items_spec if table == "items" else self.users_spec
        return spec.timestamp if spec is not None else TimestampSpec()

    def _table(self, spec: TableSpec | None, key: str) -> tuple[pl.DataFrame, str] | None:
        if spec is None:
            return None
        files = spec.resolve(self.path)
        if not files:
            return None
        frames = []
        for f in files:
            df = read_small_table(f, spec)
            if key not in df.columns:
                raise SourceError(f"{f}: missing required column(s) {key} (raw '{spec.columns.get(key, key)}')")
            if spec.format != "csv":  # a JSON or Parquet list or object where the id should be
                bad = pl.when(is_json_container(pl.col(key))).then(pl.lit("bad_id"))
                df = df.with_columns(pl.col(RAGGED).fill_null(bad))
            frames.append(df)
        return pl.concat(frames, how="diagonal_relaxed"), ",".join(str(f) for f in files)
