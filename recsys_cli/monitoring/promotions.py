"""When each model version went into production: the registry's alias history.

The registry's alias record (`registry/aliases.py`) keeps every promote and rollback
with its time (UTC, to the second) and the version the alias pointed at after it.
That is when the alias moved, not when a running service hot-reloaded it; a service
that reloads late shows its effect a little after the line a report draws.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np

from recsys_cli.errors import RecsysError


class PromotionError(RecsysError):
    """A promotion given by hand cannot be read."""


@dataclass(frozen=True)
class Promotion:
    """One move of the production alias: from `at` on, `name` version `version` served."""

    at: datetime
    name: str
    version: int
    action: str = "promote"

    def to_json(self) -> dict[str, Any]:
        return {"at": self.at.isoformat(), "name": self.name, "version": self.version, "action": self.action}


def as_promotions(events: Iterable[Promotion | Sequence[Any]]) -> list[Promotion]:
    """Promotions, oldest first, from `Promotion`s or `(at, name, version[, action])`
    tuples; `at` is a datetime or an ISO-8601 string, naive ones read as UTC."""
    found = []
    for event in events:
        if isinstance(event, Promotion):
            found.append(event)
            continue
        at, name, version, *rest = event
        found.append(Promotion(instant(at), str(name), int(version), str(rest[0]) if rest else "promote"))
    return sorted(found, key=lambda p: p.at)


def promotions_from_registry(
    uri: str, name: str, alias: str = "production", storage_options: Mapping[str, Any] | None = None
) -> list[Promotion]:
    """Every move of `alias` of model `name`, from the alias record's history
    (registry/aliases.py keeps each promote and rollback with its time and the
    version it pointed at after). Empty when the model has no such alias."""
    from recsys_cli.registry.store import Registry

    record = Registry(uri, storage_options).aliases(name).get(alias)
    history = (record or {}).get("history", [])
    return as_promotions((e["at"], name, e["version"], e.get("action", "promote")) for e in history)


def production_at(promotions: Sequence[Promotion], instants: Sequence[datetime]) -> list[Promotion | None]:
    """The promotion in force at each instant (the last one at or before it)."""
    ordered = as_promotions(promotions)
    times = np.array([p.at.timestamp() for p in ordered], dtype=np.float64)
    where = np.searchsorted(times, np.array([instant(t).timestamp() for t in instants], dtype=np.float64), "right")
    return [ordered[i - 1] if i > 0 else None for i in where.tolist()]


def instant(value: datetime | str) -> datetime:
    """A datetime or ISO-8601 string as an aware UTC datetime (naive ones read as UTC)."""
    try:
        at = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    except ValueError:
        raise PromotionError(f"promotion time {value!r}: not an ISO-8601 timestamp") from None
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)
