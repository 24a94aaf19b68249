"""What the HTTP app holds: the model being served, its users' live state, the event
log, and how a new model replaces the old one.

The served model is one immutable `Served` record behind one attribute. A request
reads that attribute once and works with what it got to the end, so a reload that
swaps it (one reference assignment, atomic in Python) never changes a model under a
request in flight: requests that started before the swap finish on the old engine,
later ones get the new one, and the old one is freed with its last request.

A reload resolves the served name's alias in the registry (the registry verifies the
version's files), pins that folder (hard links, or a copy across file systems, so that
`recsys registry gc` or a delete cannot remove it under the service), checks that its
users were pseudonymised with the key the service already uses, and only then loads a
new engine, which verifies the pinned copy again. Any refusal leaves the old model
serving; only one reload runs at a time.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from recsys_cli.data.pseudonymise import PiiKey
from recsys_cli.errors import ConfigError, PiiKeyError, RecsysError
from recsys_cli.serving.admission import Admission, Overloaded
from recsys_cli.serving.cache import TTLCache
from recsys_cli.serving.identity import package_key
from recsys_cli.serving.logs import log_event, loggers
from recsys_cli.serving.metrics import Metrics
from recsys_cli.serving.state import LiveEvent, StateStore

if TYPE_CHECKING:
    from omegaconf import DictConfig

EngineFactory = Callable[[Path, "DictConfig"], Any]
REPLAY_BATCH = 10_000


class ReloadBusy(RecsysError):
    """A reload was asked for while another one runs."""


@dataclass(frozen=True)
class Served:
    """A loaded, verified model and what the service says about it."""

    engine: Any  # serving.engine.Engine (knows_item, recommend)
    key: PiiKey  # pseudonymises raw user ids for this package
    name: str
    version: int | None
    manifest_sha: str
    cutoff: str | None
    path: Path  # the pinned package folder
    loaded_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "manifest_sha256": self.manifest_sha,
            "cutoff": self.cutoff,
            "loaded_at": self.loaded_at,
        }


def default_engine(package_dir: Path, cfg: DictConfig) -> Any:
    """The project's engine (`serving/engine.py`), loaded from a package folder."""
    from recsys_cli.serving.engine import Engine

    engine = Engine.load(package_dir, cfg)
    engine.warm()
    return engine


def served_name(cfg: DictConfig) -> str:
    """`serve.model`, or the only model name of the registry that has `serve.alias`
    (`tasks.registry.model_with_alias`)."""
    from recsys_cli.tasks.registry import model_with_alias

    return model_with_alias(cfg, cfg.serve.model, str(cfg.serve.alias))


class Pins:
    """Local copies of the packages being served (see the module docstring): in
    `serve.pin_dir`, or in a temporary folder of this process removed at `close`."""

    def __init__(self, pin_dir: str | None) -> None:
        self._owned = pin_dir is None
        self.root = Path(tempfile.mkdtemp(prefix="recsys-serve-")) if pin_dir is None else Path(pin_dir)

    def pin(self, folder: Path, name: str, version: int, manifest_sha: str) -> Path:
        """`folder` as a pinned copy named after the version and its manifest digest."""
        target = self.root / f"{name}-v{version}-{manifest_sha[:12]}"
        if target.is_dir():
            return target  # the engine verifies every file of it at load
        tmp = self.root / f".{target.name}.{uuid.uuid4().hex[:8]}"
        self.root.mkdir(parents=True, exist_ok=True)
        shutil.copytree(folder, tmp, copy_function=_link_or_copy)
        try:
            os.rename(tmp, target)
        except OSError:  # another worker pinned it first
            shutil.rmtree(tmp, ignore_errors=True)
        return target

    def release(self, path: Path) -> None:
        """Forget a pin no longer served (only in this process's own folder: a shared
        pin_dir may hold it for another worker)."""
        if self._owned and path.parent == self.root:
            shutil.rmtree(path, ignore_errors=True)

    def close(self) -> None:
        if self._owned:
            shutil.rmtree(self.root, ignore_errors=True)


def _link_or_copy(src: str, dst: str) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


class Loader:
    """Finds, pins and loads the registry's version of the served model."""

    def __init__(self, cfg: DictConfig, engine_factory: EngineFactory | None = None) -> None:
        self.cfg = cfg
        self.factory = engine_factory or default_engine
        self.pins = Pins(cfg.serve.pin_dir)
        self.name: str | None = None  # chosen on the first load, kept for reloads

    def resolve(self) -> tuple[str, int]:
        """The served name and the version its alias points at now."""
        from recsys_cli.tasks.registry import open_registry

        name = self.name or served_name(self.cfg)
        return name, open_registry(self.cfg).version_of(name, self.cfg.serve.alias)

    def load(self, name: str, version: int) -> Served:
        """Version `version` of `name`: verified by the registry, pinned, key checked,
        then loaded by the engine (which verifies the pinned copy)."""
        from recsys_cli.registry.package import LINEAGE, read_manifest
        from recsys_cli.tasks.registry import resolve_package

        folder = resolve_package(self.cfg, name, version)
        manifest = read_manifest(folder)
        pinned = self.pins.pin(folder, name, version, str(manifest["manifest_sha256"]))
        try:
            lineage = json.loads((pinned / LINEAGE).read_text())
            key = package_key(lineage, self.cfg.serve.pii_key_env, f"{name} version {version}")
            engine = self.factory(pinned, self.cfg)
        except BaseException:
            self.pins.release(pinned)
            raise
        self.name = name
        cutoff = (manifest.get("lineage") or {}).get("cutoff") or lineage.get("cutoff")
        return Served(engine, key, name, version, str(manifest["manifest_sha256"]), cutoff, pinned)

    def close(self) -> None:
        self.pins.close()


def open_event_log(cfg: DictConfig, key_fingerprint: str) -> Any:
    """The durable event log of `serve.event_log` (serving/event_log.py), bound to the
    pseudonymisation key of the served package (a log never mixes two keys' pseudonyms)."""
    from recsys_cli.serving.event_log import EventLog

    log = cfg.serve.event_log
    return EventLog(
        Path(str(log.dir)),
        fsync=str(log.fsync),  # type: ignore[arg-type]
        interval_s=float(log.fsync_interval_s),
        key_fingerprint=key_fingerprint,
    )


def open_state(cfg: DictConfig) -> StateStore:
    """The user state store `serve.state` names."""
    from recsys_cli.serving.state import make_state

    s = cfg.serve
    return make_state(
        str(s.state),
        max_events_per_user=int(s.history.max_events),
        max_users=int(s.history.max_users),
        redis_url=str(s.redis.url),
        prefix=str(s.redis.prefix),
        ttl_s=s.redis.ttl_s,
    )


class Service:
    """The served model, live state, event log, caches and metrics of one app."""

    def __init__(
        self,
        cfg: DictConfig,
        loader: Loader,
        state: StateStore | None = None,
        event_log: Any | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self.cfg = cfg
        self.loader = loader
        self.state = state if state is not None else open_state(cfg)
        self.event_log = event_log  # opened at start, once the package's key is known
        self.metrics = metrics or Metrics()
        cache = cfg.serve.cache
        self.answers: TTLCache[dict[str, Any]] = TTLCache(int(cache.size), float(cache.ttl_s))
        admission = cfg.serve.admission
        self.admission = Admission(admission.max_active, float(admission.max_wait_ms) / 1000)
        self.logger, self.access = loggers(bool(cfg.serve.log_requests))
        self.current: Served | None = None
        self.replayed = 0
        self._reload_lock = threading.Lock()
        self._events_lock = threading.Lock()

    # -- life cycle --------------------------------------------------------------------------------------------

    def start(self, served: Served | None = None) -> None:
        """Load the model (unless `served` is given), open the event log with its key,
        replay the log into in-process state, and only then start answering."""
        served = served or self.current or self.loader.load(*self.loader.resolve())
        if self.event_log is None:
            self.event_log = open_event_log(self.cfg, served.key.fingerprint)
        if str(self.cfg.serve.state) == "memory":
            self.replayed = self._replay()
            self.metrics.replayed.set(self.replayed)
            skipped = getattr(getattr(self.event_log, "counts", None), "bad_lines", 0)
            log_event(self.logger, "replayed", events=self.replayed, bad_lines=skipped)
        self._swap(served)

    def _replay(self) -> int:
        """Every logged event into the state, in log order; returns how many."""
        assert self.event_log is not None, "the event log opens before the replay"
        count, batch = 0, []
        for event in self.event_log.replay():
            batch.append(event)
            if len(batch) >= REPLAY_BATCH:
                self.state.append(batch)
                count, batch = count + len(batch), []
        if batch:
            self.state.append(batch)
        return count + len(batch)

    def _swap(self, served: Served) -> None:
        self.current = served  # the one atomic step: see the module docstring
        self.metrics.served(served.name, served.version, served.manifest_sha)
        log_event(self.logger, "serving", **served.describe())

    def reload(self) -> dict[str, Any]:
        """Serve the version the alias points at now (see the module docstring).
        Raises the refusal (RecsysError) with the old model still serving."""
        if not self._reload_lock.acquire(blocking=False):
            raise ReloadBusy("a reload is already running; try again when it has finished")
        try:
            return self._reload()
        except RecsysError as exc:
            self.metrics.reloads.labels("refused").inc()
            log_event(self.logger, "reload refused", error=str(exc))
            raise
        except Exception as exc:
            self.metrics.reloads.labels("failed").inc()
            log_event(self.logger, "reload failed", error=f"{type(exc).__name__}: {exc}")
            raise
        finally:
            self._reload_lock.release()

    def _reload(self) -> dict[str, Any]:
        previous = self.current
        name, version = self.loader.resolve()
        if previous is not None and (previous.name, previous.version) == (name, version):
            self.metrics.reloads.labels("unchanged").inc()
            return {"reloaded": False, "previous": previous.describe(), "current": previous.describe()}
        served = self.loader.load(name, version)
        if previous is not None and served.key.fingerprint != previous.key.fingerprint:
            self.loader.pins.release(served.path)
            raise PiiKeyError(
                f"{name} version {version}: its users were pseudonymised with another key than the served "
                f"model's; the live state and event log hold the old pseudonyms, so restart the service for it"
            )
        self._swap(served)
        self.answers.clear()  # keyed on the manifest digest anyway: this only frees memory
        if previous is not None and previous.path != served.path:
            self.loader.pins.release(previous.path)
        self.metrics.reloads.labels("reloaded").inc()
        return {"reloaded": True, "previous": previous.describe() if previous else None, "current": served.describe()}

    def ready(self) -> tuple[bool, str]:
        """Whether requests can be answered, and why not."""
        if self.current is None:
            return False, "no model loaded yet"
        ping = getattr(self.state, "ping", None)
        if ping is not None and not ping():
            return False, "the user state store (Redis) does not answer"
        return True, "ready"

    def close(self) -> None:
        for part in (self.event_log, self.state):
            close = getattr(part, "close", None)
            if close is not None:
                close()
        self.loader.close()

    # -- requests ----------------------------------------------------------------------------------------------

    def post_events(self, served: Served, events: Sequence[Any]) -> dict[str, Any]:
        """Pseudonymise, drop events of unknown items (counted, listed), append the
        rest to the durable log and only then to the state; returns the counts. An
        exception before the return means nothing was acknowledged (the client
        retries; the log may then hold an event twice, which replay tolerates)."""
        from recsys_cli.serving.api_models import unix_seconds
        from recsys_cli.serving.identity import pseudonymise

        now = time.time()
        pseudonyms: dict[str, str] = {}
        accepted, unknown = [], []
        for event in events:
            if not served.engine.knows_item(event.item_id):
                unknown.append(event.item_id)
                continue
            user = pseudonyms.get(event.user_id) or pseudonyms.setdefault(
                event.user_id, pseudonymise(event.user_id, served.key)
            )
            ts = unix_seconds(event.ts, now)
            accepted.append(LiveEvent(user, event.item_id, event.event_type, ts, event.extra()))
        if accepted:
            assert self.event_log is not None, "post_events before start"
            with self._events_lock:  # the state sees events in the log's order
                self.event_log.append(accepted)
                self.state.append(accepted)
        self.metrics.events.labels("accepted").inc(len(accepted))
        self.metrics.events.labels("ignored").inc(len(unknown))
        return {
            "accepted": len(accepted),
            "ignored": len(unknown),
            "ignored_items": sorted(set(unknown))[:20],
        }

    def recommend(
        self,
        served: Served,
        user: str | None,
        k: int,
        context: dict[str, Any],
        filters: dict[str, Any],
        session: Iterable[tuple[str, str, float]],
        explain: bool,
    ) -> dict[str, Any]:
        """The answer for a pseudonymised user (None: anonymous): from the answer cache
        when the same request met the same user state and model, else from the engine."""
        version, history = self.state.snapshot(user) if user is not None else (0, [])
        session_events = _session(user, session, history, served)
        cache_key = (
            served.manifest_sha,
            user,
            version,
            k,
            _frozen(context),
            _frozen(filters),
            tuple(session_events),
            explain,
        )
        cached = self.answers.get(cache_key)
        if cached is not None:
            self.metrics.cache.labels("hit").inc()
            self.metrics.answered(cached["fallback"], {})
            return {**cached, "cached": True, "stages_ms": {}}
        self.metrics.cache.labels("miss").inc()
        query = build_query(user, k, [*history, *session_events], context, filters, explain)
        try:
            with self.admission.turn() as waited:
                answer = served.engine.recommend(query)
        except Overloaded:
            self.metrics.shed.inc()
            raise
        stages = {"queue": waited, **{name: float(seconds) for name, seconds in (answer.stages or {}).items()}}
        self.metrics.answered(answer.fallback, stages)
        body = {
            "items": list(answer.items),
            "scores": [float(s) for s in answer.scores],
            "model": {"name": served.name, "version": served.version},
            "fallback": answer.fallback,
            "history_events": len(history),
            "stages_ms": {name: round(seconds * 1000, 3) for name, seconds in stages.items()},
            "cached": False,
        }
        if explain:
            body["explain"] = answer.explain
        self.answers.put(cache_key, body)
        return body


def _session(
    user: str | None, session: Iterable[tuple[str, str, float]], history: Sequence[LiveEvent], served: Served
) -> list[LiveEvent]:
    """The request's session events as live events, oldest first: without items the
    model does not know, and without those already in the user's posted history."""
    seen = {(e.item, e.event_type, e.ts) for e in history}
    out = [
        LiveEvent(user or "", item, kind, ts)
        for item, kind, ts in session
        if (item, kind, ts) not in seen and served.engine.knows_item(item)
    ]
    return sorted(out, key=lambda e: e.ts)


def _frozen(value: Any) -> Any:
    """A hashable copy of plain JSON-like data (for cache keys)."""
    if isinstance(value, dict):
        return tuple(sorted((k, _frozen(v)) for k, v in value.items()))
    if isinstance(value, list | tuple):
        return tuple(_frozen(v) for v in value)
    return value


def build_query(
    user: str | None,
    k: int,
    history: list[LiveEvent],
    context: dict[str, Any],
    filters: dict[str, Any],
    explain: bool,
) -> Any:
    """The engine's `Query` for one request. `context`: hour (int) and segment values
    (region, device, ...); `filters`: the fields of `serving/rules.Filters`."""
    from recsys_cli.serving.engine import Context, Query
    from recsys_cli.serving.rules import Filters

    values = {k2: str(v) for k2, v in context.items() if k2 != "hour" and v is not None}
    return Query(
        user=user,
        k=k,
        history=history,
        context=Context(hour=context.get("hour"), segments=values),
        filters=Filters(**filters),
        explain=explain,
    )


def check_config(cfg: DictConfig) -> None:
    """Refusals that need more than the schema (one line each)."""
    if str(cfg.serve.state) == "redis" and not str(cfg.serve.redis.url).startswith(
        ("redis://", "rediss://", "unix://")
    ):
        raise ConfigError(f"serve.redis.url = {cfg.serve.redis.url!r}: must be a redis://, rediss:// or unix:// URL")
