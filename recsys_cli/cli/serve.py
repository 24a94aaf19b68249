"""`recsys serve`: the registry's model behind an HTTP service (README "Serve")."""

from __future__ import annotations

from typing import Annotated

import typer

from recsys_cli.cli._errors import friendly_errors
from recsys_cli.cli._options import DEFAULT_CONFIG_DIR, ConfigDir


@friendly_errors
def serve(
    overrides: Annotated[
        list[str] | None,
        typer.Argument(
            help="Hydra overrides, e.g. serve.state=redis serve/rules=none serve.limits.max_k=50", show_default=False
        ),
    ] = None,
    port: Annotated[
        int | None,
        typer.Option("--port", min=0, max=65535, help="Port (default: serve.port, 8000; 0 picks a free one)."),
    ] = None,
    host: Annotated[
        str | None, typer.Option("--host", help="Address to listen on (default: serve.host, 127.0.0.1).")
    ] = None,
    model: Annotated[
        str | None, typer.Option("--model", help="Registry model name (default: the only one that has the alias).")
    ] = None,
    alias: Annotated[
        str | None,
        typer.Option("--alias", help="Alias, latest or a version number (default: serve.alias, production)."),
    ] = None,
    workers: Annotated[
        int | None, typer.Option("--workers", min=1, max=64, help="Worker processes (needs serve.state=redis).")
    ] = None,
    config_dir: ConfigDir = DEFAULT_CONFIG_DIR,
) -> None:
    """Serve the registry's model over HTTP until interrupted.

    POST /recommend and GET /users/{id}/recommendations answer; POST /events updates
    users' recent history (logged durably first); GET /healthz, /readyz, /metrics and
    /version; POST /admin/reload serves the alias's current version. /events and
    /admin need `Authorization: Bearer $RECSYS_API_KEY`: without that key the service
    refuses to start unless serve.auth=false. Raw user ids are pseudonymised with the
    lake's key ($RECSYS_PII_KEY, or the development key if the lake used it).

    Example: recsys serve serve.auth=false --port 9000
    """
    from recsys_cli.config import compose
    from recsys_cli.console import console
    from recsys_cli.tasks import serve as task

    options = {"serve.port": port, "serve.host": host, "serve.model": model, "serve.alias": alias}
    options["serve.workers"] = workers
    given = [*(overrides or []), *(f"{key}={_quoted(value)}" for key, value in options.items() if value is not None)]
    cfg = compose("serve", given, config_dir)
    prepared = task.prepare(cfg, given, config_dir)

    def listening(bound_host: str, bound_port: int) -> None:
        console.print(
            f"[green]serving[/] {prepared.name} version {prepared.version} on http://{bound_host}:{bound_port} "
            f"({cfg.serve.workers} worker(s), state {cfg.serve.state}); Ctrl+C stops",
            highlight=False,
            soft_wrap=True,
        )

    task.run(prepared, on_listening=listening)


def _quoted(value: object) -> str:
    """A value as a Hydra override: text quoted, so that `--model 007` stays a name."""
    if isinstance(value, str):
        return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
    return str(value)
