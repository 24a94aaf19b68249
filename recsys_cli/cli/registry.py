"""`recsys registry`: versions and aliases of exported model packages, on a local
folder or an S3 bucket (conf/registry/: `registry.uri`, in the overrides or the
config, or --uri)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from recsys_cli.cli._errors import friendly_errors
from recsys_cli.cli._help import Typer
from recsys_cli.cli._options import DEFAULT_CONFIG_DIR, ConfigDir, shift_override

if TYPE_CHECKING:
    from recsys_cli.registry.store import Registry

app = Typer(
    no_args_is_help=True,
    help="Versions and aliases of exported model packages: list, show, push, promote, rollback, delete, gc.\n\n"
    "The registry is registry.uri of the overrides (the chain's shared keys, conf/chain.yaml) or of "
    "conf/registry/, unless --uri names one.\n\n"
    "Example: recsys registry list",
)

Uri = Annotated[
    str | None,
    typer.Option(
        "--uri",
        help="Registry: a folder or s3://bucket/prefix [registry.uri of the overrides, else of conf/registry/].",
    ),
]
Shared = Annotated[
    list[str] | None,
    typer.Argument(
        help="The chain's shared keys only (conf/chain.yaml), e.g. registry.uri=/srv/registry: registry= and "
        "registry.* pick the registry (unless --uri is given), the others are checked and ignored.",
        show_default=False,
    ),
]
Name = Annotated[str, typer.Argument(metavar="NAME", help="Model name.", show_default=False)]
Version = Annotated[int, typer.Argument(metavar="VERSION", min=1, help="Version number.", show_default=False)]
Ref = Annotated[
    str,
    typer.Argument(
        metavar="VERSION", help="A version number, latest, or an alias (its current version).", show_default=False
    ),
]
Alias = Annotated[str, typer.Option("--alias", help="Alias name, e.g. production or staging.", show_default=False)]
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


@app.command("list")
@friendly_errors
def list_(
    name: Annotated[str | None, typer.Argument(metavar="[NAME]", help="List this model's versions.")] = None,
    as_json: AsJson = False,
    overrides: Shared = None,
    uri: Uri = None,
    config_dir: ConfigDir = DEFAULT_CONFIG_DIR,
) -> None:
    """List model names, or one model's versions.

    Without NAME: each model's number of versions, newest version and aliases. With
    NAME: each version's push time, who pushed it, aliases, metrics and source commit.

    Example: recsys registry list synth-ease
    """
    from recsys_cli.console import console, rows_table
    from recsys_cli.tasks import registry as task

    name, shared = shift_override(name, overrides)
    registry = _open("registry list", shared, uri, config_dir)[0]
    if name is None:
        rows = task.models(registry)
        if as_json:
            return _json(rows)
        if not rows:
            console.print(f"no models in {registry.uri}", highlight=False)
            return None
        table = [(r["name"], r["versions"], r["latest"], _aliases(r["aliases"]), _when(r["created_at"])) for r in rows]
        console.print(
            rows_table(f"Registry {registry.uri}", ["name", "versions", "latest", "aliases", "pushed"], table)
        )
        return None
    records = task.versions(registry, name)
    if as_json:
        return _json(records)
    header = ["version", "pushed", "by", "aliases", "metrics", "commit"]
    console.print(rows_table(f"{name} in {registry.uri}", header, [_version_row(r) for r in records]))
    return None


@app.command("show")
@friendly_errors
def show(
    name: Name,
    ref: Annotated[
        str | None, typer.Argument(metavar="[VERSION|ALIAS]", help="A version number, an alias or latest.")
    ] = None,
    overrides: Shared = None,
    uri: Uri = None,
    config_dir: ConfigDir = DEFAULT_CONFIG_DIR,
) -> None:
    """Print a version's record as JSON.

    The record holds metrics, lineage, the package's size and manifest digest, who
    pushed it and when, and the aliases pointing at it; for an alias also the alias's
    history. Without VERSION: the model's versions and its aliases with their history.

    Example: recsys registry show synth-ease production
    """
    from recsys_cli.tasks import registry as task

    ref, shared = shift_override(ref, overrides)
    _json(task.show(_open("registry show", shared, uri, config_dir)[0], name, ref))


@app.command("push")
@friendly_errors
def push(
    package: Annotated[Path, typer.Argument(metavar="PACKAGE_DIR", help="Package folder written by `recsys export`.")],
    name: Annotated[str | None, typer.Option("--name", help="Model name [the package's own].")] = None,
    overrides: Shared = None,
    uri: Uri = None,
    config_dir: ConfigDir = DEFAULT_CONFIG_DIR,
) -> None:
    """Add a package as the model's next version.

    Every file's hash is verified first, and again as it is uploaded; the version
    becomes visible only once all of it is in the registry.

    Example: recsys registry push runs/ease/20260301T091500000000Z/package --name synth-ease
    """
    from recsys_cli.console import console

    registry = _open("registry push", overrides, uri, config_dir)[0]
    record = registry.push(package, name)
    console.print(f"[green]pushed:[/] {record['name']} version {record['version']} to {registry.uri}", highlight=False)


@app.command("promote")
@friendly_errors
def promote(
    name: Name,
    version: Ref,
    alias: Alias,
    overrides: Shared = None,
    uri: Uri = None,
    config_dir: ConfigDir = DEFAULT_CONFIG_DIR,
) -> None:
    """Point an alias at a version (one atomic change; the alias keeps its history).

    Example: recsys registry promote synth-ease latest --alias production
    """
    from recsys_cli.console import console

    registry = _open("registry promote", overrides, uri, config_dir)[0]
    version = str(registry.version_of(name, version))
    record = registry.promote(name, int(version), alias)
    console.print(f"[green]promoted:[/] {name} {alias} -> version {version}{_was(record)}", highlight=False)


@app.command("rollback")
@friendly_errors
def rollback(
    name: Name, alias: Alias, overrides: Shared = None, uri: Uri = None, config_dir: ConfigDir = DEFAULT_CONFIG_DIR
) -> None:
    """Point an alias back at the version it pointed at before (one atomic change).

    Example: recsys registry rollback synth-ease --alias production
    """
    from recsys_cli.console import console

    record = _open("registry rollback", overrides, uri, config_dir)[0].rollback(name, alias)
    line = f"[green]rolled back:[/] {name} {alias} -> version {record['version']}{_was(record)}"
    console.print(line, highlight=False)


@app.command("delete")
@friendly_errors
def delete(
    name: Name, version: Version, overrides: Shared = None, uri: Uri = None, config_dir: ConfigDir = DEFAULT_CONFIG_DIR
) -> None:
    """Delete a version; refused while an alias points at it. Its number is not reused.

    Example: recsys registry delete synth-ease 3
    """
    from recsys_cli.console import console

    _open("registry delete", overrides, uri, config_dir)[0].delete(name, version)
    console.print(f"[green]deleted:[/] {name} version {version}", highlight=False)


@app.command("gc")
@friendly_errors
def gc(
    name: Name,
    keep: Annotated[int, typer.Option("--keep", min=0, help="Unaliased versions to keep, newest first.")],
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Say what would be deleted; delete nothing.")] = False,
    abandoned_after: Annotated[
        float,
        typer.Option("--abandoned-after", min=0, help="Hours after which an unfinished push's files are removed."),
    ] = 24.0,
    overrides: Shared = None,
    uri: Uri = None,
    config_dir: ConfigDir = DEFAULT_CONFIG_DIR,
) -> None:
    """Delete old versions no alias points at.

    Keeps the newest KEEP of them and every aliased version, and removes the files of
    pushes that died before publishing. Never touches anything the registry did not number.

    Example: recsys registry gc synth-ease --keep 5 --dry-run
    """
    from recsys_cli.console import console
    from recsys_cli.tasks import registry as task

    done = task.gc(_open("registry gc", overrides, uri, config_dir)[0], name, keep, dry_run, abandoned_after)
    verb = "would delete" if dry_run else "deleted"
    line = f"{name}: {verb} {_numbers(done.deleted)}; kept {_numbers(done.kept)} and, aliased, {_numbers(done.aliased)}"
    if done.abandoned:
        line += f"; unfinished pushes {'to remove' if dry_run else 'removed'}: {_numbers(done.abandoned)}"
    console.print(line, highlight=False)


# --------------------------------------------------------------------------- helpers


def _open(command: str, overrides: list[str] | None, uri: str | None, config_dir: Path) -> tuple[Registry, Any]:
    """The registry of conf/registry/ with the chain's shared overrides (any other key
    refused; those of `registry` applied, the rest checked against the chain), --uri
    replacing `registry.uri` (checked by its schema)."""
    from omegaconf import OmegaConf

    from recsys_cli.config import compose, refuse_unshared
    from recsys_cli.schemas import validate
    from recsys_cli.tasks import registry as task

    refuse_unshared(command, list(overrides or []), config_dir)
    cfg = compose("registry", list(overrides or []), config_dir)
    if uri is not None:
        OmegaConf.update(cfg, "registry.uri", uri)
        validate("registry", cfg)
    return task.open_registry(cfg), cfg


def _json(value: Any) -> None:
    from recsys_cli.console import console

    console.print_json(data=value, default=str)


def _version_row(record: dict[str, Any]) -> tuple[Any, ...]:
    by = record.get("created_by") or {}
    metrics = ", ".join(f"{k}={v:.4g}" for k, v in list(record.get("metrics", {}).items())[:3])
    commit = (record.get("source_commit") or "")[:10]
    return (
        record["version"],
        _when(record["created_at"]),
        f"{by.get('user')}@{by.get('host')}",
        ", ".join(record["aliases"]),
        metrics,
        commit,
    )


def _when(instant: Any) -> str:
    """An ISO instant to the minute, as a table shows it."""
    return str(instant)[:16].replace("T", " ")


def _aliases(aliases: dict[str, int]) -> str:
    return ", ".join(f"{a}={v}" for a, v in aliases.items())


def _was(record: dict[str, Any]) -> str:
    previous = record["history"][-1].get("previous")
    return f" (was {previous})" if previous is not None else ""


def _numbers(numbers: list[int]) -> str:
    return ", ".join(map(str, numbers)) if numbers else "none"
