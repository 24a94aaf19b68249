"""Self-contained HTML pages: tables, sections and PNGs embedded as data URIs.

One file a person can open anywhere or attach to a review: no scripts, no external
styles or images. Shared by the evaluation and monitoring reports.
"""

from __future__ import annotations

import base64
import math
from collections.abc import Mapping, Sequence
from html import escape
from typing import Any

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; margin-top: 1.8em; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; margin: 0.6em 0; font-size: 0.9em; }
th, td { padding: 0.25em 0.7em; border-bottom: 1px solid #eee; text-align: right; }
th:first-child, td:first-child { text-align: left; }
.meta { color: #555; } .note { color: #555; font-style: italic; }
.flags li { color: #a40000; } .flag { color: #a40000; font-weight: bold; }
img { max-width: 100%; display: block; margin: 0.6em 0; }
"""


def fmt(value: Any, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    if isinstance(value, int):
        return f"{value:,}"
    return f"{value:.{digits}f}"


def pct(value: Any) -> str:
    return "–" if value is None or not math.isfinite(value) else f"{value:.1%}"


def cell(interval: dict[str, Any]) -> str:
    return f"{fmt(interval['value'])} [{fmt(interval['low'])}, {fmt(interval['high'])}]"


def table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    head = "".join(f"<th>{escape(str(h))}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{escape(str(c))}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def section(anchor: str, title: str, parts: Sequence[str]) -> str:
    return f'<section id="{anchor}">\n<h2>{escape(title)}</h2>\n' + "\n".join(parts) + "\n</section>"


def img(images: Mapping[str, bytes], name: str, alt: str) -> str:
    if name not in images:
        return ""
    data = base64.b64encode(images[name]).decode("ascii")
    return f'<img id="plot-{name}" alt="{escape(alt)}" src="data:image/png;base64,{data}">'


def page(title: str, body: Sequence[str]) -> str:
    """A whole HTML document with the shared style."""
    return (
        f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n<title>{escape(title)}</title>\n'
        f"<style>{STYLE}</style>\n</head>\n<body>\n<h1>{escape(title)}</h1>\n"
        + "\n".join(body)
        + "\n</body>\n</html>\n"
    )
