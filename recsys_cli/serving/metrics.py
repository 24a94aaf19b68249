"""Prometheus metrics of one service (`GET /metrics`).

Each app has its own `CollectorRegistry`, so several apps in one process (tests, the
benchmark's reference endpoint) never share counters. Endpoints are labelled by their
route template (`/users/{user_id}/recommendations`), never by the path the client sent:
that one holds a raw user id, and would also give every user a time series.
"""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

# Milliseconds matter here: the budget of a recommendation is a few of them.
LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.015, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
NONE = "none"  # the fallback label of an answer the model gave itself


class Metrics:
    """The service's counters, histograms and gauges (names prefixed `recsys_`)."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter(
            "recsys_requests", "Requests by endpoint and status.", ["endpoint", "status"], registry=r
        )
        self.latency = Histogram(
            "recsys_request_seconds", "Request latency by endpoint.", ["endpoint"], buckets=LATENCY_BUCKETS, registry=r
        )
        self.stages = Histogram(
            "recsys_stage_seconds",
            "Time per recommendation stage (retrieval, scoring, rerank, ...).",
            ["stage"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.answers = Counter(
            "recsys_recommendations",
            "Answers by the fallback that gave them (none: the model).",
            ["fallback"],
            registry=r,
        )
        self.cache = Counter("recsys_answer_cache", "Answer cache lookups.", ["result"], registry=r)
        self.shed = Counter(
            "recsys_requests_shed",
            "Recommendation requests refused with 503 after waiting serve.admission.max_wait_ms for a turn.",
            registry=r,
        )
        self.events = Counter(
            "recsys_events", "Posted events: accepted, or ignored (unknown item).", ["outcome"], registry=r
        )
        self.reloads = Counter("recsys_reloads", "Model reloads by outcome.", ["outcome"], registry=r)
        self.model_version = Gauge("recsys_model_version", "Registry version of the served model.", registry=r)
        self.model_info = Gauge(
            "recsys_model_info", "The served model (value 1).", ["name", "version", "manifest_sha256"], registry=r
        )
        self.ready = Gauge("recsys_ready", "1 when a verified model is loaded.", registry=r)
        self.replayed = Gauge("recsys_events_replayed", "Events replayed from the log at start-up.", registry=r)
        for outcome in ("accepted", "ignored"):
            self.events.labels(outcome)  # present at 0 from the start: a rate needs both series
        self.answers.labels(NONE)

    def served(self, name: str, version: int | None, manifest_sha: str) -> None:
        """Record the model now served (one info series at a time)."""
        self.model_info.clear()
        self.model_info.labels(name, str(version), manifest_sha).set(1)
        self.model_version.set(-1 if version is None else version)
        self.ready.set(1)

    def answered(self, fallback: str | None, stages: dict[str, float]) -> None:
        self.answers.labels(fallback or NONE).inc()
        for stage, seconds in stages.items():
            self.stages.labels(stage).observe(seconds)

    def request(self, endpoint: str, status: int, seconds: float) -> None:
        self.requests.labels(endpoint, str(status)).inc()
        self.latency.labels(endpoint).observe(seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)
