"""Events a service received, exported for `recsys ingest --append` into the lake they came from.

Why a format of its own: the service only ever sees lake pseudonyms, so its events
cannot be written back in the source's raw layout, and their user ids must not be
hashed a second time. An export is one Parquet file in the contract's column names
(`ts` in epoch microseconds) whose key-value metadata says what it is and which key
made its pseudonyms (the key's fingerprint). Ingest takes it only when that is the
key of the run (hence of the lake, which `--append` checks) and every user id has a
pseudonym's form; its ids are then kept as they are, everything else (validation,
quarantine, deduplication against the lake) is the same as for raw files.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import polars as pl

from recsys_cli.data.pseudonymise import DIGEST_CHARS
from recsys_cli.data.schema import EVENTS_REQUIRED, Col
from recsys_cli.data.sources.base import TableReport, TableSpec, TimestampSpec, map_columns, scan_raw
from recsys_cli.errors import PiiKeyError, SourceError

KIND = "recsys.kind"
KIND_VALUE = "live_events"
FORMAT = "recsys.format_version"
FORMAT_VALUE = "1"
KEY_FINGERPRINT = "recsys.key_fingerprint"
PSEUDONYM = re.compile(rf"^[0-9a-f]{{{DIGEST_CHARS}}}$")  # what `pseudonymise.pseudonym` writes
SPEC = TableSpec(format="parquet", timestamp=TimestampSpec(unit="us"))
# Optional contract columns an event may carry in `LiveEvent.extra`; other extras are not exported.
OPTIONAL = {Col.SESSION: pl.String, Col.VALUE: pl.Float64, Col.QUANTITY: pl.Int64, Col.PRICE: pl.Float64}
SCHEMA = {Col.USER: pl.String, Col.ITEM: pl.String, Col.EVENT: pl.String, Col.TS: pl.Int64, **OPTIONAL}


def write_live_events(rows: Iterable[Mapping[str, Any]], out: Path, key_fingerprint: str) -> int:
    """Write events (dicts with `user`, `item`, `event_type`, `ts` in unix seconds and
    optional `extra`) as an export; returns how many. The file appears whole or not at all."""
    columns: dict[str, list[Any]] = {name: [] for name in SCHEMA}
    for row in rows:
        extra = row.get("extra") or {}
        columns[Col.USER].append(row["user"])
        columns[Col.ITEM].append(row["item"])
        columns[Col.EVENT].append(row["event_type"])
        columns[Col.TS].append(round(float(row["ts"]) * 1_000_000))
        for name in OPTIONAL:
            columns[name].append(extra.get(name))
    frame = pl.DataFrame(columns, schema=SCHEMA, strict=False)
    meta = {KIND: KIND_VALUE, FORMAT: FORMAT_VALUE, KEY_FINGERPRINT: key_fingerprint}
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    frame.write_parquet(tmp, compression="zstd", metadata=meta)
    tmp.replace(out)
    return frame.height


def check_live_events(path: Path, key_fingerprint: str) -> None:
    """Refuse a file that is not an export, was made with another key, or holds an id
    that is no pseudonym (a raw id must never reach the lake as it is)."""
    try:
        meta = pl.read_parquet_metadata(path)
    except (pl.exceptions.PolarsError, OSError) as exc:
        raise SourceError(f"{path}: not a live-events export (cannot be read as Parquet)") from exc
    if meta.get(KIND) != KIND_VALUE:
        raise SourceError(f"{path}: not a live-events export (no {KIND}={KIND_VALUE} in its metadata)")
    if meta.get(FORMAT) != FORMAT_VALUE:
        raise SourceError(f"{path}: live-events format {meta.get(FORMAT)!r}, this version reads {FORMAT_VALUE!r}")
    if meta.get(KEY_FINGERPRINT) != key_fingerprint:
        raise PiiKeyError(
            f"{path}: its pseudonyms were made with another key (fingerprint {meta.get(KEY_FINGERPRINT)}, this "
            f"run's {key_fingerprint}): its users would join nobody; append it to the lake it came from"
        )
    ids = pl.scan_parquet(path).select(pl.col(Col.USER).cast(pl.String))
    bad = ids.select((~pl.col(Col.USER).str.contains(PSEUDONYM.pattern)).sum()).collect().item()
    if bad:
        raise SourceError(f"{path}: {bad:,} user id(s) are not lake pseudonyms ({DIGEST_CHARS} hex characters)")


class WithLiveEvents:
    """A source plus live-events exports: the lake's own source (same name, same tables),
    whose event files are its own and the exports.

    With `append`, the source's own raw files may be gone: the lake keeps what it
    already holds, and only the exports are new.
    """

    def __init__(self, source: Any, exports: Sequence[Path], key_fingerprint: str, append: bool) -> None:
        self.inner = source
        self.name: str = source.name
        self.events: TableSpec = source.events
        if hasattr(source, "path"):
            self.path = source.path
        self.exports = [Path(p) for p in exports]
        self.key_fingerprint = key_fingerprint
        self.append = append

    def event_files(self) -> list[Path]:
        for path in self.exports:
            if not path.is_file():
                raise SourceError(f"{path}: live-events export not found")
            check_live_events(path, self.key_fingerprint)
        try:
            own = self.inner.event_files()
        except SourceError:
            if not self.append:
                raise  # a full rebuild from the exports alone would drop the lake's own events
            own = []
        return [*own, *(p for p in self.exports if p not in own)]

    def _is_export(self, path: Path) -> bool:
        return Path(path) in self.exports

    def events_spec(self, path: Path) -> TableSpec:
        return SPEC if self._is_export(path) else self.inner.events_spec(path)

    def pseudonymous(self, path: Path) -> bool:
        return self._is_export(path) or self.inner.pseudonymous(path)

    def scan_events(self, path: Path) -> pl.LazyFrame:
        if self._is_export(path):
            return map_columns(scan_raw(path, SPEC), SPEC, path, EVENTS_REQUIRED)
        return self.inner.scan_events(path)  # type: ignore[no-any-return]

    def table_files(self) -> dict[str, list[Path]]:
        return self.inner.table_files()  # type: ignore[no-any-return]

    def items(self) -> tuple[pl.DataFrame, str] | None:
        return self.inner.items()  # type: ignore[no-any-return]

    def users(self) -> tuple[pl.DataFrame, str] | None:
        return self.inner.users()  # type: ignore[no-any-return]

    def table_timestamp(self, table: str) -> TimestampSpec:
        return self.inner.table_timestamp(table)  # type: ignore[no-any-return]

    def table_report(self, table: str) -> TableReport | None:
        return self.inner.table_report(table)  # type: ignore[no-any-return]
