"""The HTTP app through Starlette's TestClient, with a fake engine (tests/serving/fakes.py):
what each endpoint answers, what it refuses and how, who may call it, what it counts,
and that a raw user id appears nowhere but in the request that carried it."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from recsys_cli.config import compose
from recsys_cli.data.pseudonymise import DEVELOPMENT_KEY, PiiKey
from recsys_cli.errors import ConfigError, IntegrityError
from recsys_cli.serving.app import create_app
from recsys_cli.serving.event_log import EventLog
from recsys_cli.serving.identity import pseudonymise
from recsys_cli.serving.service import Served, Service
from recsys_cli.serving.state import LiveEvent
from tests.serving.fakes import FakeEngine, install_engine_stub

KEY = "test-api-key-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {KEY}"}
DEV = PiiKey(DEVELOPMENT_KEY.encode(), is_development=True)
RAW = "customer-42@example.org"  # a raw id: must never leave the request


class FakeLoader:
    """Versions of one model `fake`; `broken` versions are refused like a damaged package."""

    def __init__(self) -> None:
        self.version = 1
        self.broken: set[int] = set()
        self.engines: dict[int, FakeEngine] = {}
        self.pins = type("Pins", (), {"release": staticmethod(lambda path: None)})()

    def resolve(self) -> tuple[str, int]:
        return "fake", self.version

    def load(self, name: str, version: int) -> Served:
        if version in self.broken:
            raise IntegrityError(f"registry/fake/versions/{version}/model/weights.safetensors: changed content")
        engine = self.engines.setdefault(version, FakeEngine(name=name, version=version))
        return Served(engine, DEV, name, version, f"{version:064d}", "2026-03-01T00:00:00+00:00", Path("."))

    def close(self) -> None:
        pass


class Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@pytest.fixture(autouse=True)
def _engine_module() -> None:
    install_engine_stub()


@pytest.fixture
def logs() -> Iterator[Lines]:
    from recsys_cli.serving.logs import JsonLines

    handler = Lines()
    handler.setFormatter(JsonLines())
    logger = logging.getLogger("recsys.serve")
    logger.addHandler(handler)
    yield handler
    logger.removeHandler(handler)


def make_cfg(tmp_path: Path, *overrides: str) -> Any:
    base = [
        f"serve.event_log.dir={tmp_path / 'events'}",
        "serve.limits.max_k=50",
        "serve.limits.max_batch=5",
        "serve.limits.max_session=3",
        "serve.limits.max_body_bytes=4096",
    ]
    return compose("serve", [*base, *overrides])


@pytest.fixture
def loader() -> FakeLoader:
    return FakeLoader()


@pytest.fixture
def client(tmp_path: Path, loader: FakeLoader, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    monkeypatch.setenv("RECSYS_API_KEY", KEY)
    cfg = make_cfg(tmp_path)
    with TestClient(create_app(cfg, service=Service(cfg, loader))) as test_client:  # type: ignore[arg-type]
        yield test_client


def post_events(client: TestClient, *events: dict[str, Any]) -> Any:
    return client.post("/events", json={"events": list(events)}, headers=AUTH)


# -- recommendations ---------------------------------------------------------------------------------------------


def test_recommend_answers_items_scores_model_fallback_and_stage_timings(client: TestClient, loader: Any) -> None:
    answer = client.post("/recommend", json={"user_id": RAW, "k": 5})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["items"] == ["i1", "i2", "i3", "i4", "i5"] and len(body["scores"]) == 5
    assert body["model"] == {"name": "fake", "version": 1} and body["fallback"] == "popular"
    assert set(body["stages_ms"]) == {"queue", "retrieval", "scoring", "rerank"} and body["stages_ms"]["scoring"] == 2.0
    assert "explain" not in body and RAW not in answer.text
    query = loader.engines[1].queries[-1]
    assert query.user == pseudonymise(RAW, DEV) and query.k == 5 and query.history == []


def test_the_default_k_context_filters_and_explain_reach_the_engine(client: TestClient, loader: Any) -> None:
    body = {
        "user_id": RAW,
        "context": {"hour": 7, "region": "north", "device": "app", "segments": {"age_bucket": "25-34"}},
        "filters": {"categories": ["shoes"], "price_max": 50, "in_stock_only": False},
        "explain": True,
    }
    answer = client.post("/recommend", json=body).json()
    assert len(answer["items"]) == 10 and answer["explain"] == {"history": 0, "hour": 7}
    query = loader.engines[1].queries[-1]
    assert query.context.hour == 7
    assert query.context.segments == {"region": "north", "device": "app", "age_bucket": "25-34"}
    assert query.filters.categories == ["shoes"] and query.filters.price_max == 50
    assert query.filters.in_stock_only is False and query.filters.price_min is None


def test_anonymous_visitor_with_session_events(client: TestClient, loader: Any) -> None:
    session = [{"item_id": "i9", "event_type": "view", "ts": 100}, {"item_id": "i7", "ts": 200}, {"item_id": "zz"}]
    answer = client.post("/recommend", json={"k": 3, "context": {"session": session}}).json()
    assert answer["items"] == ["i7", "i9", "i1"] and answer["fallback"] == "session"
    query = loader.engines[1].queries[-1]
    assert query.user is None and [e.item for e in query.history] == ["i9", "i7"]  # unknown item left out


def test_get_recommendations_of_a_user(client: TestClient, loader: Any, logs: Lines) -> None:
    answer = client.get(f"/users/{RAW}/recommendations", params={"k": 4, "explain": "true", "hour": 3})
    assert answer.status_code == 200 and len(answer.json()["items"]) == 4 and answer.json()["explain"]["hour"] == 3
    assert loader.engines[1].queries[-1].user == pseudonymise(RAW, DEV)
    line = json.loads(logs.lines[-1])
    assert line["endpoint"] == "/users/{user_id}/recommendations" and line["status"] == 200
    assert line["user"] == pseudonymise(RAW, DEV) and line["fallback"] == "popular" and line["model_version"] == 1
    assert not any(RAW in text for text in logs.lines)


def test_a_repeated_request_is_answered_from_the_cache_until_the_user_acts(client: TestClient, loader: Any) -> None:
    first = client.post("/recommend", json={"user_id": RAW, "k": 3}).json()
    again = client.post("/recommend", json={"user_id": RAW, "k": 3}).json()
    assert again["cached"] and again["items"] == first["items"] and len(loader.engines[1].queries) == 1
    post_events(client, {"user_id": RAW, "item_id": "i5", "event_type": "view"})
    after = client.post("/recommend", json={"user_id": RAW, "k": 3}).json()
    assert not after["cached"] and after["items"][0] == "i5" and after["fallback"] is None


# -- events ------------------------------------------------------------------------------------------------------


def test_events_are_logged_then_change_the_next_answer_and_unknown_items_are_counted(
    client: TestClient, tmp_path: Path
) -> None:
    result = post_events(
        client,
        {"user_id": RAW, "item_id": "i4", "event_type": "view", "ts": 1000},
        {"user_id": RAW, "item_id": "nope", "event_type": "view"},
        {"user_id": RAW, "item_id": "i8", "event_type": "add_to_cart", "ts": "2026-03-02T10:00:00Z", "price": 9.5},
    )
    assert result.status_code == 200 and result.json() == {"accepted": 2, "ignored": 1, "ignored_items": ["nope"]}
    logged = list(EventLog(tmp_path / "events").replay())
    assert [(e.user, e.item, e.event_type) for e in logged] == [
        (pseudonymise(RAW, DEV), "i4", "view"),
        (pseudonymise(RAW, DEV), "i8", "add_to_cart"),
    ]
    assert logged[0].ts == 1000 and logged[1].ts == 1772445600.0 and logged[1].extra == {"price": 9.5}
    assert RAW not in "".join(p.read_text() for p in (tmp_path / "events").iterdir() if p.is_file())
    assert client.post("/recommend", json={"user_id": RAW, "k": 2}).json()["items"] == ["i8", "i4"]


def test_the_event_log_is_replayed_at_start_up(tmp_path: Path, loader: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RECSYS_API_KEY", KEY)
    user = pseudonymise(RAW, DEV)
    with EventLog(tmp_path / "events", key_fingerprint=DEV.fingerprint) as log:
        log.append([LiveEvent(user, "i3", "view", 1.0), LiveEvent(user, "i6", "purchase", 2.0)])
    cfg = make_cfg(tmp_path)
    with TestClient(create_app(cfg, service=Service(cfg, loader))) as client:
        assert client.post("/recommend", json={"user_id": RAW, "k": 2}).json()["items"] == ["i6", "i3"]
        assert "recsys_events_replayed 2.0" in client.get("/metrics").text


# -- refusals ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "status", "says"),
    [
        ('{"user_id": "x", "k": 5', 400, "malformed JSON"),
        ("not json at all", 400, "malformed JSON"),
        ({"user_id": RAW, "k": 5, "colour": "red"}, 422, "body.colour: unknown field"),
        ({"user_id": RAW, "context": {"weather": "rain"}}, 422, "body.context.weather: unknown field"),
        ({"user_id": RAW, "k": 0}, 422, "body.k: Input should be greater than or equal to 1"),
        ({"user_id": RAW, "k": 51}, 422, "body.k: Input should be less than or equal to 50"),
        ({"user_id": RAW, "k": "ten"}, 422, "body.k: Input should be a valid integer"),
        ({"user_id": RAW, "context": {"hour": 24}}, 422, "body.context.hour: Input should be less than or equal"),
        ({"user_id": RAW, "context": {"session": [{"item_id": "i1"}] * 4}}, 422, "body.context.session: List should"),
        ({"user_id": RAW, "filters": {"price_min": 10, "price_max": 5}}, 422, "must be at least price_min (10)"),
        ({"user_id": "   "}, 422, "user_id: must not be blank"),
        ({"user_id": RAW, "k": 3, "filters": {"in_stock": True}}, 422, "body.filters.in_stock: unknown field"),
    ],
)
def test_malformed_requests_are_4xx_with_a_clear_message(client: TestClient, body: Any, status: int, says: str) -> None:
    if isinstance(body, str):
        answer = client.post("/recommend", content=body, headers={"content-type": "application/json"})
    else:
        answer = client.post("/recommend", json=body)
    assert answer.status_code == status, answer.text
    text = json.dumps(answer.json())
    assert says in text, text
    assert RAW not in text  # errors name the field, never the value sent


@pytest.mark.parametrize(
    ("events", "says"),
    [
        ([{"user_id": RAW, "item_id": "i1", "event_type": "view"}] * 6, "body.events: List should have at most 5"),
        ([], "body.events: List should have at least 1"),
        ([{"user_id": RAW, "item_id": "i1", "event_type": "wishlist"}], "body.events.0.event_type: Input should be"),
        ([{"user_id": RAW, "item_id": "i1"}], "body.events.0.event_type: required"),
        ([{"user_id": RAW, "item_id": "i1", "event_type": "view", "ts": "yesterday"}], "body.events.0.ts"),
        ([{"user_id": RAW, "item_id": "i1", "event_type": "view", "ip": "1.2.3.4"}], "body.events.0.ip: unknown"),
    ],
)
def test_bad_event_batches_are_refused_and_nothing_is_logged(
    client: TestClient, tmp_path: Path, events: list[Any], says: str
) -> None:
    answer = client.post("/events", json={"events": events}, headers=AUTH)
    assert answer.status_code == 422 and says in answer.text, answer.text
    assert RAW not in answer.text
    assert list(EventLog(tmp_path / "events").replay()) == []


def test_a_body_over_the_size_limit_is_413(client: TestClient) -> None:
    big = {"events": [{"user_id": "u" * 200, "item_id": "i" * 200, "event_type": "view"}] * 5, "pad": "x" * 4000}
    answer = client.post("/events", json=big, headers=AUTH)
    assert answer.status_code == 413 and "max_body_bytes" in answer.json()["error"]
    assert 'recsys_requests_total{endpoint="/events",status="413"} 1.0' in client.get("/metrics").text


# -- auth --------------------------------------------------------------------------------------------------------


def test_events_and_admin_need_the_api_key_reads_do_not(client: TestClient) -> None:
    event = {"events": [{"user_id": RAW, "item_id": "i1", "event_type": "view"}]}
    for headers in ({}, {"Authorization": "Bearer wrong-key-0123456789"}, {"Authorization": KEY}):
        for path, body in (("/events", event), ("/admin/reload", None)):
            refused = client.post(path, json=body, headers=headers)
            assert refused.status_code == 401 and refused.headers["www-authenticate"] == "Bearer", refused.text
            assert "Authorization: Bearer" in refused.json()["error"]
    assert client.post("/events", json=event, headers=AUTH).status_code == 200
    assert client.post("/admin/reload", headers=AUTH).status_code == 200
    assert client.post("/recommend", json={"user_id": RAW}).status_code == 200


def test_reads_need_the_key_when_auth_reads(tmp_path: Path, loader: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RECSYS_API_KEY", KEY)
    cfg = make_cfg(tmp_path, "serve.auth_reads=true")
    with TestClient(create_app(cfg, service=Service(cfg, loader))) as client:
        assert client.post("/recommend", json={"user_id": RAW}).status_code == 401
        assert client.get(f"/users/{RAW}/recommendations").status_code == 401
        assert client.post("/recommend", json={"user_id": RAW}, headers=AUTH).status_code == 200
        assert client.get("/healthz").status_code == 200 and client.get("/metrics").status_code == 200


def test_the_service_refuses_to_start_without_a_key_unless_auth_is_off(
    tmp_path: Path, loader: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("RECSYS_API_KEY", raising=False)
    with pytest.raises(ConfigError, match=r"\$RECSYS_API_KEY is not set.*serve.auth=false"):
        create_app(make_cfg(tmp_path))
    monkeypatch.setenv("RECSYS_API_KEY", "short")
    with pytest.raises(ConfigError, match="at least 16"):
        create_app(make_cfg(tmp_path))
    monkeypatch.delenv("RECSYS_API_KEY")
    cfg = make_cfg(tmp_path, "serve.auth=false")
    with TestClient(create_app(cfg, service=Service(cfg, loader))) as client:
        posted = client.post("/events", json={"events": [{"user_id": RAW, "item_id": "i1", "event_type": "view"}]})
        assert posted.status_code == 200


# -- operations --------------------------------------------------------------------------------------------------


def test_health_readiness_and_version(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["ready"] and ready.json()["model"]["version"] == 1
    version = client.get("/version").json()
    assert version["package"] == "fake" and version["version"] == 1 and version["manifest_sha256"] == f"{1:064d}"
    assert version["cutoff"] == "2026-03-01T00:00:00+00:00" and version["recsys"]


def test_not_ready_before_a_model_is_loaded(tmp_path: Path, loader: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RECSYS_API_KEY", KEY)
    cfg = make_cfg(tmp_path)
    client = TestClient(create_app(cfg, service=Service(cfg, loader)))  # no `with`: start-up never ran
    assert client.get("/healthz").status_code == 200
    assert client.get("/readyz").status_code == 503 and client.get("/readyz").json()["ready"] is False
    assert client.post("/recommend", json={"user_id": RAW}).status_code == 503


def test_metrics_count_requests_latency_stages_fallbacks_events_and_the_model(client: TestClient) -> None:
    client.post("/recommend", json={"user_id": RAW, "k": 2})
    client.post("/recommend", json={"user_id": RAW, "k": 99})
    client.get(f"/users/{RAW}/recommendations")
    post_events(
        client,
        {"user_id": RAW, "item_id": "i2", "event_type": "view"},
        {"user_id": RAW, "item_id": "x", "event_type": "view"},
    )
    client.post("/recommend", json={"user_id": RAW, "k": 2})
    text = client.get("/metrics").text
    assert 'recsys_requests_total{endpoint="/recommend",status="200"} 2.0' in text
    assert 'recsys_requests_total{endpoint="/recommend",status="422"} 1.0' in text
    assert 'recsys_requests_total{endpoint="/users/{user_id}/recommendations",status="200"} 1.0' in text
    assert 'recsys_request_seconds_count{endpoint="/recommend"} 3.0' in text
    assert 'recsys_stage_seconds_count{stage="scoring"} 3.0' in text
    assert 'recsys_recommendations_total{fallback="popular"} 2.0' in text
    assert 'recsys_recommendations_total{fallback="none"} 1.0' in text
    assert (
        'recsys_events_total{outcome="accepted"} 1.0' in text and 'recsys_events_total{outcome="ignored"} 1.0' in text
    )
    assert "recsys_model_version 1.0" in text and 'recsys_model_info{manifest_sha256="' in text
    assert RAW not in text and pseudonymise(RAW, DEV) not in text


def test_two_apps_keep_their_own_metrics(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RECSYS_API_KEY", KEY)
    apps = []
    for name in ("a", "b"):
        cfg = make_cfg(tmp_path / name)
        apps.append(TestClient(create_app(cfg, service=Service(cfg, FakeLoader()))))  # type: ignore[arg-type]
    with apps[0] as one, apps[1] as two:
        one.post("/recommend", json={"user_id": RAW})
        assert 'endpoint="/recommend"' in one.get("/metrics").text
        assert 'endpoint="/recommend"' not in two.get("/metrics").text


def test_reload_swaps_versions_and_a_refused_package_leaves_the_old_one_serving(
    client: TestClient, loader: FakeLoader
) -> None:
    unchanged = client.post("/admin/reload", headers=AUTH)
    assert unchanged.status_code == 200 and unchanged.json()["reloaded"] is False
    loader.version = 2
    swapped = client.post("/admin/reload", headers=AUTH).json()
    assert swapped["reloaded"] and swapped["previous"]["version"] == 1 and swapped["current"]["version"] == 2
    assert client.post("/recommend", json={"user_id": RAW}).json()["model"]["version"] == 2
    loader.version, loader.broken = 3, {3}
    refused = client.post("/admin/reload", headers=AUTH)
    assert refused.status_code == 422, refused.text
    assert "weights.safetensors: changed content" in refused.json()["detail"][0]
    assert refused.json()["serving"]["version"] == 2
    assert client.post("/recommend", json={"user_id": RAW}).json()["model"]["version"] == 2
    text = client.get("/metrics").text
    assert 'recsys_reloads_total{outcome="refused"} 1.0' in text and "recsys_model_version 2.0" in text


def test_a_request_that_waits_too_long_for_its_turn_gets_503_with_retry_after(
    tmp_path: Path, loader: FakeLoader, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RECSYS_API_KEY", KEY)
    cfg = make_cfg(tmp_path, "serve.admission.max_active=1", "serve.admission.max_wait_ms=20", "serve.cache.size=0")
    service = Service(cfg, loader)  # type: ignore[arg-type]
    with TestClient(create_app(cfg, service=service)) as client:
        with service.admission.turn():  # every turn taken: a request in progress
            refused = client.post("/recommend", json={"user_id": RAW, "k": 5})
        answered = client.post("/recommend", json={"user_id": RAW, "k": 5})
        metrics = client.get("/metrics").text
    assert refused.status_code == 503 and refused.headers["retry-after"] == "1"
    assert "at capacity" in refused.json()["error"] and RAW not in refused.text
    assert answered.status_code == 200 and answered.json()["stages_ms"]["queue"] < 1000
    assert "recsys_requests_shed_total 1.0" in metrics
