"""A PNG of the error slices (`slices`): model - baseline per slice with its interval.

Drawn from the summary's `slices` section, like `plots` from the rest: the
slices judged (enough users), biggest losses first, as horizontal bars around
zero, so the slices whose interval misses zero stand out at a glance.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from recsys_cli.evaluation.plots import png, pyplot

_COLOURS = {"loses": "tab:red", "wins": "tab:green"}


def slice_bars(summary: dict[str, Any], limit: int = 20) -> bytes | None:
    """Up to `limit` judged slices, biggest loss on top; None when nothing was judged."""
    section = summary.get("slices")
    rows = [r for r in (section or {}).get("rows", []) if r["verdict"] != "too few users"][:limit]
    if not section or not rows:
        return None
    plt = pyplot()
    values = np.array([r["difference"] for r in rows], dtype=np.float64)
    lows = np.array([np.nan if r["low"] is None else r["low"] for r in rows], dtype=np.float64)
    highs = np.array([np.nan if r["high"] is None else r["high"] for r in rows], dtype=np.float64)
    errors = np.nan_to_num(np.vstack([values - lows, highs - values]), nan=0.0).clip(min=0)
    y = np.arange(len(rows))[::-1]
    fig, ax = plt.subplots(figsize=(8, 0.9 + 0.32 * len(rows)))
    colours = [_COLOURS.get(r["verdict"], "tab:grey") for r in rows]
    ax.barh(y, values, xerr=errors, color=colours, capsize=2)
    ax.axvline(0, color="black", linewidth=0.8)
    span = np.r_[values, lows, highs, 0.0]
    left, right = np.nanmin(span), np.nanmax(span)
    pad = 0.08 * ((right - left) or 1.0)
    ax.set_xlim(left - pad, right + pad)  # zero and every interval inside, never on the frame
    ax.set_yticks(y, [f"{r['by']}: {r['group']}" for r in rows], fontsize="small")
    metric, item_metric = section["metric"], section["item_metric"]
    ax.set_xlabel(f"model - baseline ({metric} for user slices, {item_metric} for item slices)")
    ax.set_title(f"Error slices against {section['baseline']['label']}: red loses, green wins")
    ax.grid(axis="x", alpha=0.3)
    return png(fig)
