"""reference/formats.md, generated at build time from the code that writes the lake's,
a run's and a package's manifest.json.

The manifests have no schema object (no pydantic model, no JSON schema): each is a
dict literal in one function. This page reads those functions' source (`ast`) and
lists each top-level key with the expression that fills it, beside the docstrings
of the function and its module, so the description cannot drift from the writer.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import textwrap
from dataclasses import dataclass
from typing import Any

PAGE = "reference/formats.md"
INTRO = """# Lake, run and package formats

Each folder a command publishes is sealed by a `manifest.json`: what it holds, where
it came from, the sha256 and size of every file, and a digest of the manifest itself
(`manifest_sha256`). The manifests have no separate schema: the tables below are read,
when the site is built, from the functions that write them, each key with the
expression that fills it. How the folders are used: [the lake](../guide/data.md),
[export](../guide/export.md), [the registry](../guide/registry.md).
"""


@dataclass(frozen=True)
class Writer:
    title: str
    module: str
    function: str


WRITERS = [
    Writer("The lake (`recsys ingest`)", "recsys_cli.data.manifest", "build_manifest"),
    Writer("A run folder (`recsys train`)", "recsys_cli.registry.run_dir", "seal_run"),
    Writer("A model package (`recsys export`)", "recsys_cli.registry.package", "seal_package"),
    Writer("A model package: its payload", "recsys_cli.registry.package_build", "write_package"),
]
_MAX_EXPRESSION = 110


def _largest_dict(function: ast.FunctionDef) -> ast.Dict:
    """The manifest literal: the dict in the function with the most keys."""
    found = [node for node in ast.walk(function) if isinstance(node, ast.Dict)]
    return max(found, key=lambda d: len(d.keys))


def _key_name(node: ast.expr | None, module: Any) -> str:
    if node is None:
        return ""
    if isinstance(node, ast.Constant):
        return str(node.value)
    if isinstance(node, ast.Name):  # a module constant such as KIND
        return str(getattr(module, node.id, node.id))
    return ast.unparse(node)


def _expression(node: ast.expr) -> str:
    text = " ".join(ast.unparse(node).split())
    return text if len(text) <= _MAX_EXPRESSION else text[: _MAX_EXPRESSION - 1] + "…"


def rows(writer: Writer) -> list[tuple[str, str]]:
    """(key, expression) of the manifest's top-level keys; an unpacked mapping's key is `**name`."""
    module = importlib.import_module(writer.module)
    source = textwrap.dedent(inspect.getsource(getattr(module, writer.function)))
    function = ast.parse(source).body[0]
    assert isinstance(function, ast.FunctionDef)
    literal = _largest_dict(function)
    return [
        (_key_name(key, module) if key is not None else f"**{ast.unparse(value)}", _expression(value))
        for key, value in zip(literal.keys, literal.values, strict=True)
    ]


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def section(writer: Writer) -> list[str]:
    module = importlib.import_module(writer.module)
    doc = inspect.getdoc(module) or ""
    function_doc = inspect.getdoc(getattr(module, writer.function)) or ""
    lines = [f"## {writer.title}", "", f"Written by `{writer.module}.{writer.function}`.", ""]
    if doc:
        lines += ['!!! note "The module"', "", textwrap.indent(doc, "    "), ""]
    if function_doc:
        lines += [function_doc, ""]
    lines += ["| key | filled from |", "|---|---|"]
    lines += [f"| `{_cell(key)}` | `{_cell(expr)}` |" for key, expr in rows(writer)]
    return [*lines, ""]


def page() -> str:
    lines = [INTRO]
    for writer in WRITERS:
        lines += section(writer)
    return "\n".join(lines)
