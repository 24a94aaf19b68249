"""The monitor's HTML report and its figures: one self-contained page, the same
numbers as drift.json, a PNG per flagged feature with its drift over time."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from html import escape
from typing import Any

from recsys_cli.evaluation.html import fmt, img, page, pct, section, table


def drift_over_time_png(feature: str, points: Sequence[Mapping[str, Any]], psi_threshold: float | None) -> bytes:
    """PSI and JS of one feature against the reference, one point per window (end date)."""
    from recsys_cli.evaluation.plots import png, pyplot

    fig, ax = pyplot().subplots(figsize=(7, 3.2))
    ends = [str(p["end"])[:10] for p in points]
    for key, marker, label in (("psi", "o", "PSI"), ("js", "s", "JS distance")):
        values = [float("nan") if p.get(key) is None else float(p[key]) for p in points]
        ax.plot(ends, values, marker=marker, label=label)
    if psi_threshold is not None:
        ax.axhline(psi_threshold, color="#a40000", linestyle="--", linewidth=1, label=f"PSI threshold {psi_threshold}")
    ax.set_title(f"{feature}: drift from the training period, by window end")
    ax.set_ylabel("distance from reference")
    ax.set_ylim(bottom=0)
    ax.legend(fontsize=8)
    ax.tick_params(axis="x", labelrotation=30, labelsize=8)
    return png(fig)


def render(summary: Mapping[str, Any], images: Mapping[str, bytes]) -> str:
    """The report page of a monitor summary (`tasks/monitor.py`)."""
    alerts = summary.get("alerts", [])
    head = [
        '<p class="meta">'
        + "<br>".join(
            escape(line)
            for line in (
                f"model: {summary['model']['name']} version {summary['model']['version']} "
                f"(cutoff {summary['model']['cutoff']})",
                *(f"{k} window: {w['start']} to {w['end']}" for k, w in summary["windows"].items()),
            )
        )
        + "</p>",
        ('<ul class="flags">' + "".join(f"<li>{escape(a)}</li>" for a in alerts) + "</ul>")
        if alerts
        else '<p class="note">No alert.</p>',
    ]
    drift = summary["data_drift"]
    flagged = [r for r in drift["features"] if r.get("flagged")]
    features = table(
        ["feature", "kind", "n ref", "n now", "PSI", "JS", "p (Holm)", "flagged", "why"],
        [
            [
                r["feature"],
                r["kind"],
                r["n_reference"],
                r["n_current"],
                fmt(r["psi"], 3),
                fmt(r["js"], 3),
                fmt(r["p_holm"], 4),
                "yes" if r["flagged"] else "",
                r["reason"],
            ]
            for r in sorted(drift["features"], key=lambda r: -(r.get("psi") or 0.0))
        ],
    )
    distributions = table(
        ["distribution", "PSI", "JS", "flagged", "why"],
        [
            [d["name"], fmt(d["psi"], 3), fmt(d["js"], 3), "yes" if d["flagged"] else "", d["reason"]]
            for d in drift["distributions"]
        ],
    )
    body = [
        *head,
        section(
            "data",
            "Data drift",
            [features, distributions, *(img(images, f"drift_{r['feature']}", r["feature"]) for r in flagged)],
        ),
        section("performance", "Performance drift", [_performance(summary.get("performance", {}))]),
        section("staleness", "Staleness", [_staleness(summary.get("staleness", {}))]),
    ]
    kpis = summary.get("kpis")
    if kpis:
        figures = [img(images, f"kpi_{k}", k) for k in kpis["kpis"]]
        period = escape(str(kpis["period"]))
        note = f'<p class="note">Per {period}, with the promotions of the model; numbers in kpis.json.</p>'
        body.append(section("kpis", "Business KPIs", [note, *figures]))
    return page(f"Monitoring {summary['model']['name']}", body)


def _performance(perf: Mapping[str, Any]) -> str:
    rows = []
    for metric, r in perf.get("metrics", {}).items():
        rows.append(
            [
                metric,
                fmt(r.get("reference", {}).get("value")),
                fmt(r.get("current", {}).get("value")),
                f"{fmt(r.get('difference', {}).get('value'))} [{fmt(r.get('difference', {}).get('low'))}, "
                f"{fmt(r.get('difference', {}).get('high'))}]",
                "yes" if r.get("significant_drop") else "",
            ]
        )
    if not rows:
        return f'<p class="note">{escape(str(perf.get("note", "not measured")))}</p>'
    return table(["metric", "fresh", "now", "change [interval]", "significant drop"], rows)


def _staleness(stale: Mapping[str, Any]) -> str:
    new = stale.get("new_products", {})
    rows = [
        ["model age (days)", fmt(stale.get("model_age_days"), 1)],
        ["current events by unknown users", pct(stale.get("unknown_user_share"))],
        ["current events on unknown items", pct(stale.get("unknown_item_share"))],
        ["new products since the cutoff", fmt(new.get("count"))],
        ["... the model cannot offer", pct(new.get("share_unknown"))],
    ]
    log = stale.get("event_log")
    if log:
        rows += [
            ["service log: events by unknown users", pct(log.get("unknown_user_share"))],
            ["service log: events on unknown items", pct(log.get("unknown_item_share"))],
        ]
    movers = stale.get("popularity_movers") or []
    parts = [table(["", "value"], rows)]
    if movers:
        keys = [k for k in movers[0] if k != "known"]
        parts.append(
            table(
                [*keys, "known to the model"], [[*(m[k] for k in keys), "yes" if m["known"] else "no"] for m in movers]
            )
        )
    return "\n".join(parts)
