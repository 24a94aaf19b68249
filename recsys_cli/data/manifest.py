"""The lake manifest: what a lake holds, where it came from, and how to check it.

Written last by `recsys ingest`, read by every later verb: row counts and
reconciliation per input file, time range, schemas, per-file sha256, library
versions, the resolved config and the pseudonymisation key's fingerprint.
"""

from __future__ import annotations

import platform
from datetime import datetime
from pathlib import Path
from typing import Any

import polars as pl

from recsys_cli import __version__
from recsys_cli.data import events as ev
from recsys_cli.data.lake import file_digests
from recsys_cli.data.pseudonymise import PiiKey
from recsys_cli.data.schema import EVENTS_SCHEMA, Col
from recsys_cli.registry.outputs import KIND, LAKE

FORMAT_VERSION = 2  # 2: the manifest carries manifest_sha256 (data.lake.SEALED_FORMAT)


def inputs_section(
    previous: dict[str, Any] | None,
    counts: list[ev.FileCounts],
    digests: dict[str, str],
    table_inputs: dict[str, list[dict[str, Any]]],
    run: int = 1,
) -> list[dict[str, Any]]:
    """One entry per input file with its own reconciliation (rows_in = written +
    quarantined (+ duplicates for events)). An appended lake keeps the previous
    entries of its events and of every table not rebuilt in this `run`."""
    kept = [
        i
        for i in (previous or {}).get("inputs", [])
        if i.get("table", "events") == "events" or i.get("table") not in table_inputs
    ]
    new = [{"table": "events", **c.__dict__} for c in counts]
    for name, entries in table_inputs.items():
        new += [{"table": name, **e, "sha256": digests[e["path"]], "run": run} for e in entries]
    return kept + new


def build_manifest(
    lake: Path,
    source_name: str,
    config: dict[str, Any],
    fingerprint: str,
    key: PiiKey,
    inputs: list[dict[str, Any]],
    run: int,
    now: datetime,
) -> dict[str, Any]:
    event_files = sorted((lake / "events").glob("date=*/*.parquet"))
    events = (
        pl.scan_parquet(lake / "events", hive_partitioning=True)
        if event_files
        else pl.LazyFrame(schema={**EVENTS_SCHEMA, Col.DATE: pl.Date})
    )
    # Separate queries: one select with two n_unique() holds whole columns even on
    # the streaming engine (2.3 GiB at 50M events); unique().len() does not.
    totals, users, items, by_type = pl.collect_all(
        [
            events.select(
                pl.len().alias("rows"), pl.col(Col.TS).min().alias("min_ts"), pl.col(Col.TS).max().alias("max_ts")
            ),
            events.select(Col.USER).unique().select(pl.len()),
            events.select(Col.ITEM).unique().select(pl.len()),
            events.group_by(Col.EVENT).len().sort(Col.EVENT),
        ],
        engine="streaming",
    )
    stats = totals.row(0, named=True) | {"users": users.item(), "items": items.item()}
    quarantine = _reason_counts(lake)
    return {
        KIND: LAKE,
        "format_version": FORMAT_VERSION,
        "source": source_name,
        "created_at": now.isoformat(),
        "run": run,
        "fingerprint": fingerprint,
        "rows": {"events": stats["rows"], **_table_rows(lake), "quarantine": sum(quarantine.values())},
        "events_by_type": {str(k): v for k, v in by_type.iter_rows()},
        "distinct": {"users_in_events": stats["users"], "items_in_events": stats["items"]},
        "time_range": {"min_ts": str(stats["min_ts"]), "max_ts": str(stats["max_ts"])},
        "quarantine_by_reason": quarantine,
        "schema": {
            "events": {k: str(v) for k, v in events.collect_schema().items()},
            **{
                t: {k: str(v) for k, v in pl.read_parquet_schema(lake / f"{t}.parquet").items()}
                for t in ("items", "users")
                if (lake / f"{t}.parquet").exists()
            },
        },
        "inputs": inputs,
        "outputs": file_digests(lake),
        "pii": {"key_fingerprint": key.fingerprint, "development_key": key.is_development},
        "versions": {"recsys": __version__, "polars": pl.__version__, "python": platform.python_version()},
        "config": config,
        "events_schema_contract": {k: str(v) for k, v in EVENTS_SCHEMA.items()},
    }


def _table_rows(lake: Path) -> dict[str, int]:
    return {
        t: pl.scan_parquet(lake / f"{t}.parquet").select(pl.len()).collect().item()
        for t in ("items", "users")
        if (lake / f"{t}.parquet").exists()
    }


def _reason_counts(lake: Path) -> dict[str, int]:
    files = sorted((lake / "quarantine").glob("*.parquet"))
    if not files:
        return {}
    q = pl.concat([pl.scan_parquet(f).select(Col.REASON) for f in files]).group_by(Col.REASON).len()
    return dict(q.sort(Col.REASON).collect().iter_rows())
