"""reference/http-api.md, generated at build time from the service's own OpenAPI
document: the FastAPI app of `recsys serve`, built from the default serve config
without loading a model (`create_app(...).openapi()` needs none), rendered as
tables of routes and request schemas, with the whole document below them.
"""

from __future__ import annotations

import json
from typing import Any

PAGE = "reference/http-api.md"
INTRO = """# HTTP API

The routes of `recsys serve`, generated from the service's OpenAPI document when the
site is built (the app of the default `conf/serve.yaml`; limits such as the largest
`k` follow `serve.limits`). Routes marked *API key* need `Authorization: Bearer <key>`
(`$RECSYS_API_KEY`); reads need it too under `serve.auth_reads=true`. How the service
answers, falls back and takes live events: [Serving](../guide/serving.md).
"""


def openapi() -> dict[str, Any]:
    """The service's OpenAPI document, from an app that never loads a model."""
    from recsys_cli.config import compose
    from recsys_cli.serving.app import create_app

    # auth=false: building the app must not need $RECSYS_API_KEY; the routes are the same.
    return create_app(compose("serve", ["serve.auth=false"])).openapi()


def _ref(schema: dict[str, Any]) -> str:
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        return f"[{name}](#{name.lower()})"
    if "anyOf" in schema:
        return " or ".join(_ref(s) for s in schema["anyOf"])
    if schema.get("type") == "array":
        return f"list of {_ref(schema.get('items', {}))}"
    if schema.get("type") == "object" and "additionalProperties" in schema:
        return f"map to {_ref(schema['additionalProperties'])}"
    return str(schema.get("type", "any"))


def _limits(schema: dict[str, Any]) -> str:
    words = {
        "minimum": ">=",
        "maximum": "<=",
        "exclusiveMinimum": ">",
        "exclusiveMaximum": "<",
        "minLength": "length >=",
        "maxLength": "length <=",
        "minItems": "items >=",
        "maxItems": "items <=",
    }
    found = [f"{word} {schema[key]}" for key, word in words.items() if key in schema]
    for option in schema.get("anyOf", []):
        found += [f"{word} {option[key]}" for key, word in words.items() if key in option]
    if "enum" in schema:
        found.append("one of " + ", ".join(f"`{v}`" for v in schema["enum"]))
    return ", ".join(found)


def _default(schema: dict[str, Any]) -> str:
    return f"`{json.dumps(schema['default'])}`" if "default" in schema else ""


def routes(doc: dict[str, Any]) -> list[str]:
    lines = ["## Routes", "", "| method | path | parameters | body | answers |", "|---|---|---|---|---|"]
    for path, methods in doc["paths"].items():
        for method, op in methods.items():
            params = ", ".join(
                f"`{p['name']}` ({', '.join(filter(None, [p['in'], _limits(p.get('schema', {}))]))})"
                for p in op.get("parameters", [])
                if p["name"].lower() != "authorization"
            )
            key = any(p["name"].lower() == "authorization" for p in op.get("parameters", []))
            body = op.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema")
            answers = ", ".join(op.get("responses", {}))
            lines.append(
                f"| {method.upper()} | `{path}`{' (API key)' if key else ''} | {params} | "
                f"{_ref(body) if body else ''} | {answers} |"
            )
    return [*lines, ""]


def schemas(doc: dict[str, Any]) -> list[str]:
    lines = ["## Request and answer schemas", ""]
    for name, schema in doc.get("components", {}).get("schemas", {}).items():
        lines += [f"### {name}", ""]
        if schema.get("description"):
            lines += [schema["description"], ""]
        required = set(schema.get("required", []))
        lines += ["| field | type | required | default | limits |", "|---|---|---|---|---|"]
        for field, spec in schema.get("properties", {}).items():
            needed = "yes" if field in required else ""
            lines.append(f"| `{field}` | {_ref(spec)} | {needed} | {_default(spec)} | {_limits(spec)} |")
        lines.append("")
    return lines


def page() -> str:
    doc = openapi()
    whole = json.dumps(doc, indent=2)
    return "\n".join(
        [
            INTRO,
            *routes(doc),
            *schemas(doc),
            "## The OpenAPI document",
            "",
            '??? note "openapi.json"',
            "",
            "    ```json",
            *("    " + line for line in whole.splitlines()),
            "    ```",
            "",
        ]
    )
