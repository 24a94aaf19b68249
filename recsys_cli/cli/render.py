"""Rich tables for the CLI, built from manifests (plain dicts)."""

from __future__ import annotations

from typing import Any

from rich.console import Console

from recsys_cli.console import kv_table, rows_table


def ingest_summary(manifest: dict[str, Any], console: Console) -> None:
    rows = manifest["rows"]
    console.print(
        kv_table(
            f"Lake: {manifest['source']} (run {manifest['run']})",
            {
                "events": rows["events"],
                "users (table)": rows.get("users", 0),
                "items (table)": rows.get("items", 0),
                "users with events": manifest["distinct"]["users_in_events"],
                "items with events": manifest["distinct"]["items_in_events"],
                "first event": manifest["time_range"]["min_ts"],
                "last event": manifest["time_range"]["max_ts"],
                "quarantined rows": rows.get("quarantine", 0),
                "pii key": "DEVELOPMENT" if manifest["pii"]["development_key"] else manifest["pii"]["key_fingerprint"],
            },
        )
    )
    total = max(rows["events"], 1)
    by_type = [(k, v, f"{v / total:.1%}") for k, v in manifest["events_by_type"].items()]
    console.print(rows_table("Events by type", ["event_type", "rows", "share"], by_type))
    files = [
        (
            i["path"],
            i.get("rows_in", 0),
            i.get("rows_written", 0),
            i.get("rows_quarantined", 0),
            i.get("duplicates_dropped", 0),
        )
        for i in manifest["inputs"]
    ]
    console.print(rows_table("Inputs", ["file", "rows in", "written", "quarantined", "duplicates"], files))
    if manifest["quarantine_by_reason"]:
        reasons = sorted(manifest["quarantine_by_reason"].items(), key=lambda kv: -kv[1])
        console.print(rows_table("Quarantined by reason", ["reason", "rows"], reasons))
