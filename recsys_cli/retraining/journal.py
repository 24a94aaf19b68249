"""What a retrain has done so far, so that running it again is safe.

A retrain is keyed on what it would learn from and how: the registry model it
retrains, the sha256 of the lake's manifest once new data is appended, and the
retrain settings. Its record, `<key>/retrain.json`, is rewritten atomically as
each step completes:

    started  ->  decided (candidate built, scored, decision made)
             ->  pushed (the candidate is a registry version, its record holding the decision)
             ->  promoted | kept (final)

Running the same key again reads the record: a final one means nothing new to do;
`pushed` finishes the promotion it had decided; anything earlier starts over in
the key's work folder (ours, replaced whole). The production alias moves only in
the last step, after the candidate is pushed, so a crash at any point leaves
production as it was.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from recsys_cli.registry.integrity import write_json

RECORD = "retrain.json"
KIND = "retrain"
STARTED, DECIDED, PUSHED, PROMOTED, KEPT = "started", "decided", "pushed", "promoted", "kept"
FINAL = (PROMOTED, KEPT)


def key(name: str, lake_manifest_sha256: str, settings: dict[str, Any]) -> str:
    """16 hex digits naming one retrain: same model, same lake, same settings."""
    text = json.dumps({"model": name, "lake": lake_manifest_sha256, "settings": settings}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def read(folder: Path) -> dict[str, Any] | None:
    path = folder / RECORD
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None  # a record that cannot be read is a retrain that starts over
    return record if isinstance(record, dict) and record.get("kind") == KIND else None


def write(folder: Path, record: dict[str, Any], state: str, **fields: Any) -> dict[str, Any]:
    """The record moved to `state` with `fields` added, written atomically."""
    now = datetime.now(UTC).isoformat(timespec="seconds")
    out = {**record, **fields, "kind": KIND, "state": state}
    out["history"] = [*record.get("history", []), {"state": state, "at": now}]
    write_json(folder / RECORD, out)
    return out
