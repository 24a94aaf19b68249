"""`recsys serve`: check and load the served model, then run the HTTP service.

`prepare` does everything that can fail for a reason the user can fix (no API key, no
model with the alias, a damaged package, another pseudonymisation key) before a port is
opened, so each is one line at the prompt, not a traceback from a worker. `run` then
serves in the foreground until interrupted.

One worker: the model loaded by `prepare` is handed to the app. Several (`--workers N`,
which needs `serve.state=redis`): uvicorn starts N processes from the app factory
(`serving.app:factory`), each composing the same config from the environment and
loading its own model; `prepare` has verified the package and the key once first.
uvicorn's access log stays off: it would print request paths, and
GET /users/{user_id}/... holds a raw user id (serving/logs.py writes our own lines).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from recsys_cli.serving.service import EngineFactory, Loader, Served

if TYPE_CHECKING:
    from fastapi import FastAPI
    from omegaconf import DictConfig


@dataclass
class Prepared:
    """A service ready to start: its config, the model it serves, and (one worker) its app."""

    cfg: DictConfig
    name: str
    version: int
    served: Served | None  # loaded here for one worker; each worker loads its own otherwise
    app: FastAPI | None
    overrides: list[str]
    config_dir: str | None

    @property
    def service(self) -> Any:
        """The app's `serving.service.Service` (one worker only)."""
        return None if self.app is None else self.app.state.service


def prepare(
    cfg: DictConfig,
    overrides: list[str] | None = None,
    config_dir: Path | str | None = None,
    engine_factory: EngineFactory | None = None,
) -> Prepared:
    """Check the key, find the model and load it (see the module docstring)."""
    from recsys_cli.serving.app import create_app
    from recsys_cli.serving.auth import ApiKey
    from recsys_cli.serving.service import Service, check_config

    check_config(cfg)
    ApiKey.from_env(str(cfg.serve.api_key_env), bool(cfg.serve.auth))  # refused before anything loads
    loader = Loader(cfg, engine_factory)
    name, version = loader.resolve()
    plain_overrides = list(overrides or [])
    if int(cfg.serve.workers) > 1:
        _check_package(cfg, name, version)
        loader.close()
        return Prepared(cfg, name, version, None, None, plain_overrides, _dir(config_dir))
    served = loader.load(name, version)
    app = create_app(cfg, service=Service(cfg, loader), served=served)
    return Prepared(cfg, name, version, served, app, plain_overrides, _dir(config_dir))


def _check_package(cfg: DictConfig, name: str, version: int) -> None:
    """The registry's copy verified, and the key its users need present and right."""
    from recsys_cli.registry.package import LINEAGE
    from recsys_cli.serving.identity import package_key
    from recsys_cli.tasks.registry import resolve_package

    folder = resolve_package(cfg, name, version)
    package_key(json.loads((folder / LINEAGE).read_text()), cfg.serve.pii_key_env, f"{name} version {version}")


def _dir(config_dir: Path | str | None) -> str | None:
    return str(Path(config_dir).resolve()) if config_dir else None


def run(prepared: Prepared, on_listening: Any = None) -> None:
    """Serve until interrupted (SIGINT/SIGTERM: in-flight requests finish first).
    `on_listening(host, port)` is called once the socket is bound (the port actually
    bound, for serve.port=0)."""
    import uvicorn

    from recsys_cli.serving.app import CONFIG_DIR_ENV, OVERRIDES_ENV

    serve = prepared.cfg.serve
    common: dict[str, Any] = {
        "host": str(serve.host),
        "port": int(serve.port),
        "access_log": False,
        "log_level": "warning",
        "timeout_graceful_shutdown": 10,
    }
    if prepared.app is None:
        from uvicorn.supervisors import Multiprocess

        os.environ[OVERRIDES_ENV] = json.dumps(prepared.overrides)
        if prepared.config_dir:
            os.environ[CONFIG_DIR_ENV] = prepared.config_dir
        config = uvicorn.Config(
            "recsys_cli.serving.app:factory", factory=True, workers=int(serve.workers), lifespan="on", **common
        )
        sock = config.bind_socket()  # bound once here, shared by the workers (port 0: the one chosen)
        if on_listening is not None:
            host, port = sock.getsockname()[:2]
            on_listening(host, port)
        try:
            Multiprocess(config, sockets=[sock]).run()
        except KeyboardInterrupt:  # Ctrl+C: the workers have stopped
            pass
        return
    server = _server(uvicorn.Config(prepared.app, lifespan="on", **common), on_listening)
    server.run()


def _server(config: Any, on_listening: Any) -> Any:
    """uvicorn's Server, telling `on_listening` the bound address after start-up."""
    import uvicorn

    class Server(uvicorn.Server):
        async def startup(self, sockets: Any = None) -> None:
            await super().startup(sockets)
            if on_listening is not None and self.started and self.servers:
                host, port = self.servers[0].sockets[0].getsockname()[:2]
                on_listening(host, port)

    return Server(config)
