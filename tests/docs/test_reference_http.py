"""The HTTP reference (scripts/docs_http.py) is the service's own OpenAPI document:
every route of the app is in its table, every request schema has its fields."""

from __future__ import annotations

from tests.docs import load_script

docs_http = load_script("docs_http")


def test_every_route_is_listed_with_its_method() -> None:
    doc = docs_http.openapi()
    table = "\n".join(docs_http.routes(doc))
    assert {"/recommend", "/events", "/healthz", "/admin/reload"} <= set(doc["paths"])
    for path, methods in doc["paths"].items():
        for method in methods:
            assert f"| {method.upper()} | `{path}`" in table, (method, path)
    assert "| POST | `/events` (API key) |" in table
    assert "| POST | `/recommend` |" in table and "[Recommend](#recommend)" in table


def test_request_schemas_list_their_fields_and_limits() -> None:
    text = "\n".join(docs_http.schemas(docs_http.openapi()))
    assert "### Recommend" in text and "### EventIn" in text
    assert "| `k` | integer |  | `10` | >= 1" in text
    assert "| `event_type` | string | yes |  | one of `view`" in text
