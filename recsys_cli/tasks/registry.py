"""`recsys registry`: the registry named by a composed config (conf/registry/), and
the summaries its subcommands show. No printing here; the CLI renders."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from recsys_cli.registry.integrity import SEAL
from recsys_cli.registry.store import Collected, Registry


def open_registry(cfg: DictConfig) -> Registry:
    """The registry at `cfg.registry.uri` with its `storage_options`."""
    options = OmegaConf.to_container(cfg.registry.storage_options, resolve=True) or {}
    return Registry(str(cfg.registry.uri), options)  # type: ignore[arg-type]


def cache_dir(cfg: DictConfig) -> Path | None:
    value = cfg.registry.get("cache_dir")
    return Path(str(value)).expanduser() if value else None


def resolve_package(cfg: DictConfig, name: str, ref: str | int) -> Path:
    """The verified local package of `name` at a version, alias or `latest` in the
    configured registry (what a service loads)."""
    return open_registry(cfg).resolve(name, ref, cache_dir(cfg))


def model_with_alias(cfg: DictConfig, model: str | None, alias: str) -> str:
    """`model`, or the only model name of the registry that has `alias` (for `latest`
    or a version number: the only name); refused listing the candidates when there
    are none or several. What `recsys serve` and `recsys monitor` act on."""
    from recsys_cli.errors import RegistryError

    if model:
        return str(model)
    registry = open_registry(cfg)
    names = registry.names()
    if alias == "latest" or alias.isdigit():
        having = names
    else:
        having = [n for n in names if alias in registry.aliases(n)]
    if len(having) == 1:
        return having[0]
    if not having:
        if not names:
            raise RegistryError(
                f"{registry.uri}: no model (the registry is empty); export one (`recsys export RUN`) "
                f"and promote it (`recsys registry promote NAME latest --alias {alias}`)"
            )
        raise RegistryError(
            f"{registry.uri}: no model has alias {alias!r} (models: {', '.join(names)}); promote one "
            f"(`recsys registry promote NAME VERSION --alias {alias}`) or choose one with --model"
        )
    raise RegistryError(
        f"{registry.uri}: several models have alias {alias!r} ({', '.join(having)}); choose one with --model NAME"
    )


def models(registry: Registry) -> list[dict[str, Any]]:
    """One row per model name: how many versions, the newest, and its aliases."""
    rows = []
    for name in registry.names():
        versions = registry.versions(name)
        rows.append(
            {
                "name": name,
                "versions": len(versions),
                "latest": versions[-1]["version"],
                "created_at": versions[-1]["created_at"],
                "aliases": {a: r["version"] for a, r in sorted(registry.aliases(name).items())},
            }
        )
    return rows


def versions(registry: Registry, name: str) -> list[dict[str, Any]]:
    """`name`'s version records, each with the aliases pointing at it."""
    pointing = _pointing(registry, name)
    return [{**_public(r), "aliases": pointing.get(int(r["version"]), [])} for r in registry.versions(name)]


def show(registry: Registry, name: str, ref: str | None) -> dict[str, Any]:
    """A version's record (by number, alias or `latest`), with the aliases pointing at
    it and, for an alias, the alias's record and history; without `ref`, the model:
    its versions and every alias with its history."""
    if ref is None:
        return {
            "name": name,
            "versions": [int(r["version"]) for r in registry.versions(name)],
            "aliases": {a: _public(r) for a, r in registry.aliases(name).items()},
        }
    version = registry.version_of(name, ref)
    shown = {**_public(registry.record(name, version)), "aliases": _pointing(registry, name).get(version, [])}
    if not str(ref).isdigit() and ref != "latest":
        shown["alias"] = _public(registry.aliases(name)[str(ref)])
    return shown


def gc(registry: Registry, name: str, keep: int, dry_run: bool, abandoned_after_hours: float) -> Collected:
    return registry.gc(name, keep, dry_run=dry_run, stale_after=timedelta(hours=abandoned_after_hours))


def _public(record: dict[str, Any]) -> dict[str, Any]:
    """A record as shown: without its seal, which is only for checking it."""
    return {k: v for k, v in record.items() if k != SEAL}


def _pointing(registry: Registry, name: str) -> dict[int, list[str]]:
    found: dict[int, list[str]] = {}
    for alias, record in sorted(registry.aliases(name).items()):
        found.setdefault(int(record["version"]), []).append(alias)
    return found
