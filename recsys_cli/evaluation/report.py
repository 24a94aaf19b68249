"""A self-contained HTML report of an evaluation summary.

One file a person can open anywhere or attach to a review: no scripts, no
external styles or images; the plots are PNGs embedded as base64 data URIs.
Numbers come from the same summary as metrics.json, so the two never disagree.
"""

from __future__ import annotations

import base64
import math
from collections.abc import Sequence
from html import escape
from typing import Any

from recsys_cli.evaluation.metrics import RANKING_METRICS
from recsys_cli.evaluation.plots import all_plots

BEYOND_ROWS = (
    ("coverage", "catalogue coverage"),
    ("gini", "Gini index of exposure"),
    ("novelty", "novelty (bits)"),
    ("diversity", "intra-list diversity (category)"),
    ("popularity", "mean popularity (share of users)"),
    ("popularity_lift", "popularity lift vs training"),
    ("new_items", "share of new products"),
)

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; margin-top: 1.8em; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; margin: 0.6em 0; font-size: 0.9em; }
th, td { padding: 0.25em 0.7em; border-bottom: 1px solid #eee; text-align: right; }
th:first-child, td:first-child { text-align: left; }
.meta { color: #555; } .note { color: #555; font-style: italic; }
.flags li { color: #a40000; } .flag { color: #a40000; font-weight: bold; }
img { max-width: 100%; display: block; margin: 0.6em 0; }
"""


def render_report(summary: dict[str, Any]) -> tuple[str, dict[str, bytes]]:
    """The HTML text and the PNGs it embeds (by name), so they can also be saved."""
    images = all_plots(summary)
    body = [
        _header(summary),
        _flags(summary["flags"]),
        _section("accuracy", "Ranking metrics", [_img(images, "metrics", "ranking metrics"), _headline(summary)]),
        _section("beyond", "Beyond accuracy", [_beyond(summary)]),
        _section("calibration", "Calibration of engagement probabilities", _calibration(summary, images)),
        _section("exposure", "Exposure by item group", _items(summary, images)),
        _section("segments", "User segments", _users(summary, images)),
    ]
    title = f"Evaluation of {summary.get('model', 'a model')} on {summary.get('part', '?')}"
    html = (
        f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n<title>{escape(title)}</title>\n'
        f"<style>{_STYLE}</style>\n</head>\n<body>\n<h1>{escape(title)}</h1>\n"
        + "\n".join(body)
        + "\n</body>\n</html>\n"
    )
    return html, images


def _fmt(value: Any, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    if isinstance(value, int):
        return f"{value:,}"
    return f"{value:.{digits}f}"


def _pct(value: Any) -> str:
    return "–" if value is None or not math.isfinite(value) else f"{value:.1%}"


def _cell(interval: dict[str, Any]) -> str:
    return f"{_fmt(interval['value'])} [{_fmt(interval['low'])}, {_fmt(interval['high'])}]"


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    head = "".join(f"<th>{escape(str(h))}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{escape(str(c))}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _section(anchor: str, title: str, parts: Sequence[str]) -> str:
    return f'<section id="{anchor}">\n<h2>{escape(title)}</h2>\n' + "\n".join(parts) + "\n</section>"


def _img(images: dict[str, bytes], name: str, alt: str) -> str:
    if name not in images:
        return ""
    data = base64.b64encode(images[name]).decode("ascii")
    return f'<img id="plot-{name}" alt="{escape(alt)}" src="data:image/png;base64,{data}">'


def _header(s: dict[str, Any]) -> str:
    users, boot = s["users"], s["bootstrap"]
    window = s.get("window") or {}
    span = f"{window.get('start') or '?'} to {window.get('end') or '?'}" if window else "?"
    lines = [
        f"run: {s.get('run', '?')}",
        f"window: {s.get('part', '?')} of {s.get('fold', '?')} ({span})",
        f"users: {users['evaluated']:,} evaluated, {users['cold_start']:,} cold-start, "
        f"{users['with_relevant_items']:,} with relevant items",
        f"catalogue: {s['items']['catalogue']:,} items; {s['items']['training_users']:,} training users",
        f"intervals: {boot['confidence']:.0%} percentile bootstrap over users, {boot['resamples']:,} resamples "
        f"(seed {boot['seed']})",
    ]
    return '<p class="meta">' + "<br>".join(escape(line) for line in lines) + "</p>"


def _flags(flags: Sequence[str]) -> str:
    if not flags:
        return '<p class="note">No fairness threshold exceeded.</p>'
    items = "".join(f"<li>{escape(f)}</li>" for f in flags)
    return f'<section id="flags"><h2>Flags</h2><ul class="flags">{items}</ul></section>'


def _headline(s: dict[str, Any]) -> str:
    rows = [[m, *(_cell(s["headline"][f"{m}@{k}"]) for k in s["ks"])] for m in RANKING_METRICS]
    return _table(["metric", *(f"@{k}" for k in s["ks"])], rows)


def _beyond(s: dict[str, Any]) -> str:
    rows = []
    for key, label in BEYOND_ROWS:
        cells = []
        for k in s["ks"]:
            value = s["headline"].get(f"{key}@{k}") or s["beyond"].get(f"{key}@{k}")
            cells.append("–" if value is None else _cell(value) if isinstance(value, dict) else _fmt(value))
        if any(c != "–" for c in cells):
            rows.append([label, *cells])
    note = (
        '<p class="note">Coverage and Gini describe the whole population of lists: resampling users with '
        "replacement would shrink coverage by construction, so they carry no interval. Popularity is the share "
        f"of training users who interacted with an item; the training level is "
        f"{_fmt(s['beyond']['training_popularity'])}.</p>"
    )
    return _table(["measure", *(f"@{k}" for k in s["ks"])], rows) + note


def _calibration(s: dict[str, Any], images: dict[str, bytes]) -> list[str]:
    cal = s["calibration"]
    if not cal.get("available"):
        return [f'<p class="note">Not available: {escape(cal.get("note") or "no probabilities")}.</p>']
    rows = [
        ["expected calibration error", _fmt(cal["ece"])],
        *(
            [name, _cell(cal[f"{key}_interval"])]
            for key, name in (
                ("brier", "Brier score"),
                ("log_loss", "log loss"),
                ("predicted", "mean predicted probability"),
                ("observed", "observed engagement rate"),
            )
        ),
        ["slots checked", _fmt(cal["pairs"])],
        ["users scored", _fmt(cal["users"])],
    ]
    note = f'<p class="note">{escape(cal["note"])}.</p>' if cal.get("note") else ""
    return [_img(images, "reliability", "reliability diagram"), _table(["measure", "value"], rows), note]


def _items(s: dict[str, Any], images: dict[str, bytes]) -> list[str]:
    k = int(s["primary"].partition("@")[2])
    parts = [_img(images, "exposure_by_tier", "exposure by popularity tier")]
    header = ["group", "items", "training interactions", "window positives", f"exposure@{k}", "ratio", f"recall@{k}"]
    for name, rows in s["segments"]["items"].items():
        parts.append(f"<h3>{escape(name)}</h3>")
        parts.append(
            _table(
                header,
                [
                    [
                        r["group"],
                        _fmt(r["items"]),
                        _pct(r["interaction_share"]),
                        _pct(r["positive_share"]),
                        _pct(r[f"exposure@{k}"]),
                        _fmt(r[f"exposure_ratio@{k}"], 2),
                        _fmt(r[f"recall@{k}"]),
                    ]
                    for r in rows
                ],
            )
        )
    checks = [e for e in s["fairness"]["exposure"] if e["flagged"]]
    if checks:
        parts.append(f'<p class="flag">{len(checks)} item group(s) outside the configured exposure ratio.</p>')
    return parts


def _users(s: dict[str, Any], images: dict[str, bytes]) -> list[str]:
    metric = s["primary"]
    k = metric.partition("@")[2]
    parts = [_img(images, "segment_gaps", "segment gaps")]
    gaps = s["fairness"]["user_gaps"]
    if gaps:
        parts.append(
            _table(
                ["attribute", "best group", "worst group", f"gap in {metric} [interval]", "relative", "flag"],
                [
                    [
                        g["attribute"],
                        f"{g['best']} {_fmt(g['best_value'])}",
                        f"{g['worst']} {_fmt(g['worst_value'])}",
                        f"{_fmt(g['gap'])} [{_fmt(g['low'])}, {_fmt(g['high'])}]",
                        _pct(g["relative_gap"]),
                        "FLAG" if g["flagged"] else "",
                    ]
                    for g in gaps
                ],
            )
        )
    extra = [f"{m}@{k}" for m in ("recall", "hitrate", "map", "novelty", "diversity")]
    for name, rows in s["segments"]["users"].items():
        shown = [c for c in extra if rows and c in rows[0]]
        parts.append(f"<h3>{escape(name)}</h3>")
        parts.append(
            _table(
                ["group", "users", f"{metric} [interval]", *shown],
                [
                    [
                        r["group"],
                        _fmt(r["users"]),
                        f"{_fmt(r[metric])} [{_fmt(r[f'{metric}_low'])}, {_fmt(r[f'{metric}_high'])}]",
                        *(_fmt(r[c]) for c in shown),
                    ]
                    for r in rows
                ],
            )
        )
    return parts
