"""Structured request logs: one JSON line per request on stderr.

Fields: ts, endpoint (the route template), method, status, latency_ms, and where they
apply fallback, model, model_version, cached, user (the lake pseudonym), accepted /
ignored counts, error. Never a raw user id: the path a client sent is not logged (it
holds one in GET /users/{user_id}/...), and uvicorn's own access log is turned off for
the same reason (see cli/serve.py).
"""

from __future__ import annotations

import json
import logging
import os
import sys
from typing import Any

LOGGER = "recsys.serve"  # service events: start-up, replay, reloads (always on)
ACCESS = "recsys.serve.access"  # one line per request (serve.log_requests)


class JsonLines(logging.Formatter):
    """A record's `fields` (or its message) as one compact JSON object."""

    def format(self, record: logging.LogRecord) -> str:
        fields = getattr(record, "fields", None)
        out: dict[str, Any] = {"ts": round(record.created, 3), "level": record.levelname.lower()}
        out.update(fields if isinstance(fields, dict) else {"message": record.getMessage()})
        return json.dumps(out, separators=(",", ":"), default=str)


def loggers(log_requests: bool) -> tuple[logging.Logger, logging.Logger]:
    """The service's event logger and its request logger, both writing JSON lines to
    stderr (set up once per process); the request logger is silent when request logs
    are off (`serve.log_requests=false`)."""
    service = logging.getLogger(LOGGER)
    if not any(isinstance(h.formatter, JsonLines) for h in service.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(JsonLines())
        service.addHandler(handler)
        service.propagate = False
    service.setLevel(logging.INFO)
    access = logging.getLogger(ACCESS)  # a child: its lines go through the handler above
    access.setLevel(logging.INFO if log_requests else logging.WARNING)
    return service, access


def log_request(logger: logging.Logger, fields: dict[str, Any]) -> None:
    if logger.isEnabledFor(logging.INFO):
        logger.info("request", extra={"fields": fields})


def log_event(logger: logging.Logger, event: str, **fields: Any) -> None:
    """A service event (start-up, reload, replay), with the process id (one per worker),
    at warning level when it failed."""
    level = logging.WARNING if fields.get("error") else logging.INFO
    logger.log(level, event, extra={"fields": {"event": event, **fields, "pid": os.getpid()}})
