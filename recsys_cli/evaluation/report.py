"""A self-contained HTML report of an evaluation summary.

One file a person can open anywhere or attach to a review: no scripts, no
external styles or images; the plots are PNGs embedded as base64 data URIs.
Numbers come from the same summary as metrics.json, so the two never disagree.
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape
from typing import Any

from recsys_cli.evaluation.html import cell, fmt, img, page, pct, section, table
from recsys_cli.evaluation.metrics import RANKING_METRICS
from recsys_cli.evaluation.plots import all_plots
from recsys_cli.evaluation.slices_plot import slice_bars

BEYOND_ROWS = (
    ("coverage", "catalogue coverage"),
    ("gini", "Gini index of exposure"),
    ("novelty", "novelty (bits)"),
    ("diversity", "intra-list diversity (category)"),
    ("popularity", "mean popularity (share of users)"),
    ("popularity_lift", "popularity lift vs training"),
    ("new_items", "share of new products"),
)


def render_report(summary: dict[str, Any]) -> tuple[str, dict[str, bytes]]:
    """The HTML text and the PNGs it embeds (by name), so they can also be saved."""
    images = all_plots(summary)
    slices = slice_bars(summary)
    if slices is not None:
        images["error_slices"] = slices
    body = [
        _header(summary),
        _flags(summary["flags"]),
        section("accuracy", "Ranking metrics", [img(images, "metrics", "ranking metrics"), _headline(summary)]),
        *_slices(summary, images),
        section("beyond", "Beyond accuracy", [_beyond(summary)]),
        section("calibration", "Calibration of engagement probabilities", _calibration(summary, images)),
        section("exposure", "Exposure by item group", _items(summary, images)),
        section("segments", "User segments", _users(summary, images)),
    ]
    title = f"Evaluation of {summary.get('model', 'a model')} on {summary.get('part', '?')}"
    html = page(title, body)
    return html, images


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
    rows = [[m, *(cell(s["headline"][f"{m}@{k}"]) for k in s["ks"])] for m in RANKING_METRICS]
    return table(["metric", *(f"@{k}" for k in s["ks"])], rows)


def _beyond(s: dict[str, Any]) -> str:
    rows = []
    for key, label in BEYOND_ROWS:
        cells = []
        for k in s["ks"]:
            value = s["headline"].get(f"{key}@{k}") or s["beyond"].get(f"{key}@{k}")
            cells.append("–" if value is None else cell(value) if isinstance(value, dict) else fmt(value))
        if any(c != "–" for c in cells):
            rows.append([label, *cells])
    note = (
        '<p class="note">Coverage and Gini describe the whole population of lists: resampling users with '
        "replacement would shrink coverage by construction, so they carry no interval. Popularity is the share "
        f"of training users who interacted with an item; the training level is "
        f"{fmt(s['beyond']['training_popularity'])}.</p>"
    )
    return table(["measure", *(f"@{k}" for k in s["ks"])], rows) + note


def _calibration(s: dict[str, Any], images: dict[str, bytes]) -> list[str]:
    cal = s["calibration"]
    if not cal.get("available"):
        return [f'<p class="note">Not available: {escape(cal.get("note") or "no probabilities")}.</p>']
    rows = [
        ["expected calibration error", fmt(cal["ece"])],
        *(
            [name, cell(cal[f"{key}_interval"])]
            for key, name in (
                ("brier", "Brier score"),
                ("log_loss", "log loss"),
                ("predicted", "mean predicted probability"),
                ("observed", "observed engagement rate"),
            )
        ),
        ["slots checked", fmt(cal["pairs"])],
        ["users scored", fmt(cal["users"])],
    ]
    note = f'<p class="note">{escape(cal["note"])}.</p>' if cal.get("note") else ""
    return [img(images, "reliability", "reliability diagram"), table(["measure", "value"], rows), note]


def _items(s: dict[str, Any], images: dict[str, bytes]) -> list[str]:
    k = int(s["primary"].partition("@")[2])
    parts = [img(images, "exposure_by_tier", "exposure by popularity tier")]
    header = ["group", "items", "training interactions", "window positives", f"exposure@{k}", "ratio", f"recall@{k}"]
    for name, rows in s["segments"]["items"].items():
        parts.append(f"<h3>{escape(name)}</h3>")
        parts.append(
            table(
                header,
                [
                    [
                        r["group"],
                        fmt(r["items"]),
                        pct(r["interaction_share"]),
                        pct(r["positive_share"]),
                        pct(r[f"exposure@{k}"]),
                        fmt(r[f"exposure_ratio@{k}"], 2),
                        fmt(r[f"recall@{k}"]),
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
    parts = [img(images, "segment_gaps", "segment gaps")]
    gaps = s["fairness"]["user_gaps"]
    if gaps:
        parts.append(
            table(
                ["attribute", "best group", "worst group", f"gap in {metric} [interval]", "relative", "flag"],
                [
                    [
                        g["attribute"],
                        f"{g['best']} {fmt(g['best_value'])}",
                        f"{g['worst']} {fmt(g['worst_value'])}",
                        f"{fmt(g['gap'])} [{fmt(g['low'])}, {fmt(g['high'])}]",
                        pct(g["relative_gap"]),
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
            table(
                ["group", "users", f"{metric} [interval]", *shown],
                [
                    [
                        r["group"],
                        fmt(r["users"]),
                        f"{fmt(r[metric])} [{fmt(r[f'{metric}_low'])}, {fmt(r[f'{metric}_high'])}]",
                        *(fmt(r[c]) for c in shown),
                    ]
                    for r in rows
                ],
            )
        )
    return parts


def _slices(s: dict[str, Any], images: dict[str, bytes]) -> list[str]:
    """Where the model loses to the baseline (`recsys evaluate --baseline`), biggest losses first."""
    if "slices" not in s:
        return []
    sl = s["slices"]
    users, overall, base = sl["users"], sl["overall"], sl["baseline"]
    level = f"{overall['confidence']:.0%}"
    note = (
        f'<p class="meta">{escape(sl["metric"])}: model {fmt(overall["mean_a"])}, baseline {escape(base["model"])} '
        f"{fmt(overall['mean_b'])}, difference {fmt(overall['difference'])} "
        f"[{fmt(overall['low'])}, {fmt(overall['high'])}] on {users['compared']:,} users both scored "
        f"({users['left_out']:,} left out: {users['only_model']:,} scored only by the model, "
        f"{users['only_baseline']:,} only by the baseline).</p>"
        '<p class="note">User slices compare the per-user metric; item slices compare the recall '
        f"({escape(sl['item_metric'])}) of the window's positives in the item group, over the users holding some. "
        f"Differences are model minus baseline with {level} paired bootstrap intervals over users; a slice loses "
        f"when its interval lies wholly below zero (slices under {sl['min_users']:,} users are not judged).</p>"
    )
    rows = [
        [
            r["kind"],
            r["by"],
            r["group"],
            fmt(r["users"]),
            fmt(r["positives"]),
            fmt(r["model"]),
            fmt(r["baseline"]),
            f"{fmt(r['difference'])} [{fmt(r['low'])}, {fmt(r['high'])}]",
            "LOSES" if r["verdict"] == "loses" else r["verdict"],
        ]
        for r in sl["rows"]
    ]
    header = ["slice", "by", "group", "users", "positives", "model", "baseline", "difference [interval]", "verdict"]
    title = f"Error slices against {base['label']}"
    chart = img(images, "error_slices", "model minus baseline by slice")
    return [section("slices", title, [note, chart, table(header, rows)])]
