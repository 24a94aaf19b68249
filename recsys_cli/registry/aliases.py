"""Aliases (`production`, `staging`, any name): one small record per alias that
names its current version and keeps its whole history.

A change (promote, rollback) reads the record, appends one history entry and
writes the record back with `Storage.replace_if`: a conditional write on the
version read (S3: `If-Match` on its ETag; local: compare under `flock`, then
`os.replace`). So each change is one atomic replacement of one object, a reader
sees the record before or after it and never between, and of two concurrent
changes the second is refused rather than lost: a promote then re-reads and
applies itself on top (both are in the history); a rollback stops, since it
would otherwise roll back a step nobody asked for.

Rollback walks back through promotions like a stack: each promote pushes its
version, each rollback pops one, so rolling back twice after promoting 1, 2, 3
lands on 1.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from recsys_cli.errors import RegistryError
from recsys_cli.registry.storage import Storage, decode, encode, now, who

KIND = "registry-alias"
FORMAT_VERSION = 1
ALIASES = "aliases"
PROMOTE, ROLLBACK = "promote", "rollback"
_SUFFIX = ".json"
_PROMOTE_TRIES = 20


def path(storage: Storage, name: str, alias: str) -> str:
    return storage.path(name, ALIASES, f"{alias}{_SUFFIX}")


def read(storage: Storage, name: str, alias: str) -> dict[str, Any] | None:
    """The alias's record, or None when the model has no such alias."""
    where = path(storage, name, alias)
    data = storage.read(where)
    return None if data is None else decode(storage, where, data, KIND, name=name, alias=alias)


def read_all(storage: Storage, name: str) -> dict[str, dict[str, Any]]:
    """Every alias of a model, by alias name."""
    found = {}
    for entry in storage.names(storage.path(name, ALIASES)):
        alias = entry.removesuffix(_SUFFIX)
        if entry.endswith(_SUFFIX) and not entry.startswith(".") and ".json." not in entry:
            record = read(storage, name, alias)
            if record is not None:
                found[alias] = record
    return found


def stack(record: dict[str, Any] | None) -> list[int]:
    """The versions rollback walks back through, oldest first; the last is the alias's target."""
    targets: list[int] = []
    for entry in (record or {}).get("history", []):
        if entry.get("action") == ROLLBACK and targets:
            targets.pop()
        else:
            targets.append(int(entry["version"]))
    return targets


def promote(storage: Storage, name: str, alias: str, version: int) -> dict[str, Any]:
    """Point `alias` at `version` (the caller checked that the version exists)."""

    def step(current: dict[str, Any] | None) -> dict[str, Any]:
        return _next(name, alias, current, PROMOTE, version)

    for _ in range(_PROMOTE_TRIES):
        record = _write(storage, name, alias, step)
        if record is not None:
            return record
    raise RegistryError(f"{name}: alias {alias!r} kept changing under {_PROMOTE_TRIES} promotes; try again")


def rollback(storage: Storage, name: str, alias: str, check: Callable[[int], object]) -> dict[str, Any]:
    """Point `alias` back at the version it pointed at before its current one.
    `check(version)` raises when that version can no longer be served (deleted)."""

    def step(current: dict[str, Any] | None) -> dict[str, Any]:
        if current is None:
            raise RegistryError(f"{name}: no alias {alias!r} to roll back")
        targets = stack(current)
        if len(targets) < 2:
            raise RegistryError(
                f"{name}: alias {alias!r} has no earlier version to roll back to (it points at version "
                f"{current['version']}, its first); promote a version instead"
            )
        check(targets[-2])
        return _next(name, alias, current, ROLLBACK, targets[-2])

    record = _write(storage, name, alias, step)
    if record is None:
        raise RegistryError(
            f"{name}: alias {alias!r} changed while rolling back (another promote or rollback); nothing was "
            f"changed: look at `recsys registry show {name} {alias}` and run again"
        )
    return record


def _write(
    storage: Storage, name: str, alias: str, step: Callable[[dict[str, Any] | None], dict[str, Any]]
) -> dict[str, Any] | None:
    """Apply `step` to the alias as read, written only if nobody changed it since; None if somebody did."""
    where = path(storage, name, alias)
    data, token = storage.read_versioned(where)
    current = None if data is None else decode(storage, where, data, KIND, name=name, alias=alias)
    record = step(current)
    if not storage.replace_if(where, encode(record), token):
        return None
    return json.loads(encode(record))  # with its seal, as stored


def _next(name: str, alias: str, current: dict[str, Any] | None, action: str, version: int) -> dict[str, Any]:
    previous = None if current is None else int(current["version"])
    entry = {"action": action, "version": version, "previous": previous, "at": now(), "by": who()}
    history = [*(current or {}).get("history", []), entry]
    return {
        "kind": KIND,
        "format_version": FORMAT_VERSION,
        "name": name,
        "alias": alias,
        "version": version,
        "updated_at": entry["at"],
        "history": history,
    }
