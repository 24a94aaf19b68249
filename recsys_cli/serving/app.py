"""The HTTP service (FastAPI): recommendations, live events, operations.

    POST /recommend                        {"user_id", "k", "context", "filters", "explain"}
    GET  /users/{user_id}/recommendations  ?k=&explain=&hour=&region=&device=
    POST /events                           {"events": [{"user_id", "item_id", "event_type", "ts"?}]}  (API key)
    GET  /healthz  /readyz  /metrics  /version
    POST /admin/reload                     (API key)

Design decisions:
- The handlers that run the model are plain `def`s, run in the threadpool: a slow
  request never blocks /healthz or /metrics, and the reload (also in a thread) never
  blocks requests. Each handler reads `service.current` once (service.py).
- A raw user id is pseudonymised on entry (identity.py) and goes nowhere else: not in
  logs, metrics labels (routes are labelled by template), error messages (validation
  errors are rendered without the values sent) or answers.
- Refusals are JSON `{"error": ..., "detail": [...]}`: 400 for a body that is not JSON,
  413 for a body over `serve.limits.max_body_bytes`, 422 for unknown fields and values
  out of range (k, batch size, session length, event types), 401 without the API key,
  503 before a model is loaded or when a request waited too long for its turn to score
  (admission.py; with Retry-After). A refused reload answers 409 (busy), 404 (no such
  model or alias) or 422 (the package is refused: damaged, another key) and the old
  model keeps serving.
- `create_app` builds everything from the config; tests pass their own engine factory
  (`engine_factory(package_dir, cfg)`), and `recsys serve` a model already loaded, so
  that a bad package is one clear line before the server starts.
"""

# No `from __future__ import annotations` here: FastAPI reads the handlers' annotations,
# and the request models and the bounds of `k` are built per app (from the config), as
# local names that string annotations could not resolve.
import json
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import Depends, FastAPI, Header, HTTPException, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from recsys_cli import __version__
from recsys_cli.errors import RecsysError, RegistryError
from recsys_cli.serving.admission import Overloaded
from recsys_cli.serving.api_models import request_models
from recsys_cli.serving.auth import ApiKey
from recsys_cli.serving.identity import pseudonymise
from recsys_cli.serving.logs import log_request
from recsys_cli.serving.service import EngineFactory, Loader, ReloadBusy, Served, Service

if TYPE_CHECKING:
    from omegaconf import DictConfig

# `recsys serve --workers N` hands uvicorn this factory; the worker composes the same
# config from these variables (cli/serve.py sets them).
OVERRIDES_ENV = "RECSYS_SERVE_OVERRIDES"
CONFIG_DIR_ENV = "RECSYS_SERVE_CONFIG_DIR"


def create_app(
    cfg: "DictConfig",
    *,
    engine_factory: EngineFactory | None = None,
    served: Served | None = None,
    service: Service | None = None,
) -> FastAPI:
    """The service's app for a composed `serve` config. Refuses (ConfigError) to build
    one without an API key unless `serve.auth=false`. The model is `served` when given,
    else loaded from the registry at start-up, after the event log is replayed."""
    api_key = ApiKey.from_env(str(cfg.serve.api_key_env), bool(cfg.serve.auth))
    service = service or Service(cfg, Loader(cfg, engine_factory))

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await run_in_threadpool(service.start, served)
        try:
            yield
        finally:
            service.close()

    app = FastAPI(title="recsys", version=__version__, lifespan=lifespan)
    app.state.service = service
    limits = cfg.serve.limits
    app.add_middleware(Observe, service=service, max_body_bytes=int(limits.max_body_bytes), routes=app.router.routes)
    _handlers(app)
    _routes(app, service, api_key, cfg)
    return app


def factory() -> FastAPI:
    """The app of a uvicorn worker (`--workers N`): the config composed from the
    overrides `recsys serve` left in the environment; each worker loads its own model."""
    from recsys_cli.config import compose

    overrides = json.loads(os.environ.get(OVERRIDES_ENV, "[]"))
    return create_app(compose("serve", overrides, os.environ.get(CONFIG_DIR_ENV) or None))


# -- routes ------------------------------------------------------------------------------------------------------


def _routes(app: FastAPI, service: Service, api_key: ApiKey, cfg: "DictConfig") -> None:
    def key_required(authorization: Annotated[str | None, Header()] = None) -> None:
        if not api_key.allows(authorization):
            raise HTTPException(
                401, "missing or wrong API key: send Authorization: Bearer <key>", {"WWW-Authenticate": "Bearer"}
            )

    writes = [Depends(key_required)]
    reads = writes if cfg.serve.auth_reads else []
    _recommend_routes(app, service, cfg, reads)
    _event_routes(app, service, cfg, writes)
    _operation_routes(app, service, writes)


def _recommend_routes(app: FastAPI, service: Service, cfg: "DictConfig", reads: list[Any]) -> None:
    limits = cfg.serve.limits
    models = request_models(int(limits.default_k), int(limits.max_k), int(limits.max_session), int(limits.max_batch))

    @app.post("/recommend", dependencies=reads)
    def recommend(body: models.Recommend, request: Request) -> Answer:  # type: ignore[name-defined]
        served = _serving(service)
        req: Any = body
        context = req.context
        session = [(e.item_id, e.event_type, _when(e.ts)) for e in context.session]
        values = {"hour": _hour(context.hour), "region": context.region, "device": context.device}
        values.update(context.segments)
        user = _user(req.user_id, served)
        answer = service.recommend(served, user, req.k, values, req.filters.model_dump(), session, req.explain)
        _note(request, served, user, answer)
        return Answer(answer)

    @app.get("/users/{user_id}/recommendations", dependencies=reads)
    def user_recommendations(
        user_id: str,
        request: Request,
        k: Annotated[int, Query(ge=1, le=int(limits.max_k))] = int(limits.default_k),
        explain: bool = False,
        hour: Annotated[int | None, Query(ge=0, le=23)] = None,
        region: Annotated[str | None, Query(min_length=1, max_length=128)] = None,
        device: Annotated[str | None, Query(min_length=1, max_length=128)] = None,
    ) -> Answer:
        served = _serving(service)
        user = _user(user_id, served)
        values = {"hour": _hour(hour), "region": region, "device": device}
        answer = service.recommend(served, user, k, values, {}, [], explain)
        _note(request, served, user, answer)
        return Answer(answer)


def _event_routes(app: FastAPI, service: Service, cfg: "DictConfig", writes: list[Any]) -> None:
    limits = cfg.serve.limits
    models = request_models(int(limits.default_k), int(limits.max_k), int(limits.max_session), int(limits.max_batch))

    @app.post("/events", dependencies=writes)
    def events(body: models.Events, request: Request) -> dict[str, Any]:  # type: ignore[name-defined]
        served = _serving(service)
        posted: Any = body
        if any(not event.user_id.strip() for event in posted.events):
            raise HTTPException(422, "events: a user_id must not be blank")
        try:
            counts = service.post_events(served, posted.events)
        except OSError as exc:  # the log could not be written: nothing is acknowledged
            raise HTTPException(503, f"the event log cannot be written ({type(exc).__name__}); retry") from None
        request.state.log = {"model_version": served.version, **{k: counts[k] for k in ("accepted", "ignored")}}
        return counts


def _operation_routes(app: FastAPI, service: Service, writes: list[Any]) -> None:
    @app.get("/healthz")
    async def healthz() -> dict[str, Any]:
        return {"status": "ok"}

    @app.get("/readyz")
    async def readyz() -> JSONResponse:
        ok, reason = await run_in_threadpool(service.ready)
        body = {"ready": ok, "reason": reason, "model": _describe(service)}
        return JSONResponse(body, status_code=200 if ok else 503)

    @app.get("/metrics")
    async def metrics() -> Response:
        return Response(service.metrics.render(), media_type=service.metrics.content_type)

    @app.get("/version")
    async def version() -> dict[str, Any]:
        current = _serving(service)
        return {
            "package": current.name,
            "version": current.version,
            "manifest_sha256": current.manifest_sha,
            "cutoff": current.cutoff,
            "loaded_at": current.loaded_at,
            "recsys": __version__,
        }

    @app.post("/admin/reload", dependencies=writes)
    async def reload(request: Request) -> JSONResponse:
        try:
            result = await run_in_threadpool(service.reload)
        except ReloadBusy as exc:
            return _error(409, str(exc))
        except RegistryError as exc:
            return _error(404, "reload refused", [str(exc)], serving=_describe(service))
        except RecsysError as exc:  # a damaged package, another key, a bad model file
            return _error(422, "reload refused: the package cannot be served", [str(exc)], serving=_describe(service))
        except Exception as exc:  # noqa: BLE001 - whatever failed, the old model serves on
            detail = f"{type(exc).__name__}: {exc}"
            return _error(500, "reload failed", [detail], serving=_describe(service))
        request.state.log = {"model_version": result["current"]["version"], "reloaded": result["reloaded"]}
        return JSONResponse(result)


class Answer(JSONResponse):
    """An answer rendered straight to JSON, skipping FastAPI's generic encoder on the
    hot path; numpy numbers an engine's explain record may hold become plain ones."""

    def render(self, content: Any) -> bytes:
        return json.dumps(content, separators=(",", ":"), default=_plain).encode()


def _plain(value: Any) -> Any:
    item = getattr(value, "item", None)  # numpy scalars
    if callable(item):
        return item()
    tolist = getattr(value, "tolist", None)  # numpy arrays
    if callable(tolist):
        return tolist()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def _serving(service: Service) -> Served:
    current = service.current
    if current is None:
        raise HTTPException(503, "no model loaded yet; see /readyz")
    return current


def _user(raw: str | None, served: Served) -> str | None:
    if raw is None:
        return None
    if not raw.strip():
        raise HTTPException(422, "user_id: must not be blank (leave it out for an anonymous visitor)")
    return pseudonymise(raw, served.key)


def _hour(hour: int | None) -> int:
    """The hour of day (UTC) the request is for: given, or now."""
    return time.gmtime().tm_hour if hour is None else hour


def _when(ts: Any) -> float:
    from recsys_cli.serving.api_models import unix_seconds

    return unix_seconds(ts, time.time())


def _note(request: Request, served: Served, user: str | None, answer: dict[str, Any]) -> None:
    """What the request log line says about an answer (the user by pseudonym only)."""
    request.state.log = {
        "user": user,
        "model_version": served.version,
        "fallback": answer["fallback"],
        "cached": answer["cached"],
        "items": len(answer["items"]),
    }


def _describe(service: Service) -> dict[str, Any] | None:
    return service.current.describe() if service.current else None


def _error(status: int, error: str, detail: list[str] | None = None, **more: Any) -> JSONResponse:
    return JSONResponse({"error": error, "detail": detail or [], **more}, status_code=status)


# -- refusals ----------------------------------------------------------------------------------------------------


def _handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = list(exc.errors())
        if any(e.get("type") == "json_invalid" for e in errors):
            return _error(400, "the request body is not valid JSON", [_problem(e) for e in errors[:1]])
        return _error(422, "invalid request", [_problem(e) for e in errors[:20]])

    @app.exception_handler(Overloaded)
    async def overloaded(request: Request, exc: Overloaded) -> JSONResponse:
        return JSONResponse({"error": str(exc), "detail": []}, status_code=503, headers={"Retry-After": "1"})

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return JSONResponse({"error": str(exc.detail), "detail": []}, status_code=exc.status_code, headers=exc.headers)


_MESSAGES = {
    "extra_forbidden": "unknown field",
    "missing": "required",
    "json_invalid": "malformed JSON",
}


def _problem(error: Any) -> str:
    """`body.k: Input should be less than or equal to 100`: where and why, never the
    value sent (it may be a raw user id)."""
    loc = ".".join(str(part) for part in error.get("loc", ()))
    kind = error.get("type", "")
    message = _MESSAGES.get(kind) or str(error.get("msg", "invalid")).removeprefix("Value error, ")
    if kind == "json_invalid":
        ctx = error.get("ctx") or {}
        message = f"malformed JSON ({ctx.get('error', 'cannot be parsed')})"
    return f"{loc}: {message}" if loc else message


# -- every request: size limit, metrics, one log line ------------------------------------------------------------

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


class Observe:
    """ASGI middleware: refuses bodies over the size limit (413), and records every
    request's status and latency by route template in the metrics and the log."""

    def __init__(self, app: Any, service: Service, max_body_bytes: int, routes: list[Any]) -> None:
        self.app, self.service, self.max_body_bytes, self.routes = app, service, max_body_bytes, routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        scope.setdefault("state", {})
        status = 500

        async def sending(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            if self._too_large(scope):
                await _refuse_size(sending, self.max_body_bytes)
            else:
                await self.app(scope, self._limited(receive), sending)
        finally:
            self._record(scope, status, time.perf_counter() - start)

    def _endpoint(self, scope: Scope) -> str:
        """The route template the request went to (matched here when it was refused
        before routing); `other` for paths the app does not serve."""
        from starlette.routing import Match

        route = scope.get("route")
        if route is None:
            route = next((r for r in self.routes if r.matches(scope)[0] == Match.FULL), None)
        return str(getattr(route, "path", None) or "other")

    def _too_large(self, scope: Scope) -> bool:
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                try:
                    return int(value) > self.max_body_bytes
                except ValueError:
                    return True
        return False

    def _limited(self, receive: Receive) -> Receive:
        """`receive` that stops a body (chunked, without a length) past the limit."""
        seen = 0

        async def limited() -> dict[str, Any]:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_body_bytes:  # FastAPI passes an HTTPException raised here on
                    raise HTTPException(413, _too_large_message(self.max_body_bytes))
            return message

        return limited

    def _record(self, scope: Scope, status: int, seconds: float) -> None:
        endpoint = self._endpoint(scope)
        self.service.metrics.request(endpoint, status, seconds)
        fields = {
            "endpoint": endpoint,
            "method": scope.get("method"),
            "status": status,
            "latency_ms": round(seconds * 1000, 3),
        }
        fields.update(scope["state"].get("log") or {})
        log_request(self.service.access, fields)


def _too_large_message(limit: int) -> str:
    return f"the request body is over {limit} bytes (serve.limits.max_body_bytes)"


async def _refuse_size(send: Send, limit: int) -> None:
    body = json.dumps({"error": _too_large_message(limit), "detail": []})
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body.encode()})
