"""Warm start or refit from scratch: the retrain's policy, with the figures it read.

A warm start keeps what the production model learned and only adjusts it, which is
right while the shop looks like it did. When it does not (a large share of the
new window's events on products the model never met, or the category mix moved
far), the old rows are a poor start and a refit is safer. `mode: auto` measures
both on the days since the production model's cutoff against the same number of
days before it, and refits when either passes its threshold; `warm` and `full`
force one. A model that cannot warm start (the closed-form fits EASE, item-kNN
and popularity, whose refit is exact and cheap, and the two-stage ranker) is
always refit.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

import polars as pl

from recsys_cli.data.schema import Col, Timestamp
from recsys_cli.features.vocab import Vocabulary
from recsys_cli.monitoring.shares import category_mix_drift

Mode = Literal["warm", "full"]


@dataclass(frozen=True)
class Choice:
    mode: Mode
    reason: str
    figures: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {"mode": self.mode, "reason": self.reason, "figures": self.figures}


def shift_figures(
    events: pl.LazyFrame,
    items: pl.LazyFrame | None,
    known_items: Vocabulary,
    production_cutoff: datetime,
    cutoff: datetime,
) -> dict[str, Any]:
    """What moved between the production model's last days and the days since:
    the share of new events on items it does not know, and the category mix's
    Jensen-Shannon distance (None without a catalogue with categories)."""
    ts = pl.col(Col.TS)
    days = (cutoff - production_cutoff).total_seconds() / 86400
    since = events.filter((ts >= pl.lit(production_cutoff, dtype=Timestamp)) & (ts < pl.lit(cutoff, dtype=Timestamp)))
    before = events.filter(
        (ts >= pl.lit(production_cutoff - timedelta(days=days), dtype=Timestamp))
        & (ts < pl.lit(production_cutoff, dtype=Timestamp))
    )
    counted = since.select(
        pl.len().alias("events"), (known_items.encode(Col.ITEM) == 0).sum().alias("unknown")
    ).collect()
    n, unknown = int(counted["events"][0]), int(counted["unknown"][0])
    figures: dict[str, Any] = {"days_since_cutoff": round(days, 3), "new_events": n}
    figures["unknown_item_event_share"] = unknown / n if n else None
    figures["category_js"] = None
    if items is not None and Col.CATEGORY in items.collect_schema().names():
        figures["category_js"] = category_mix_drift(before, since, items).js
    return figures


def choose(mode: str, supports_warm_start: bool, figures: dict[str, Any], full_when: dict[str, Any]) -> Choice:
    """The mode the config asks for, or under `auto` the one the figures call for."""
    if not supports_warm_start:
        return Choice("full", "the model cannot warm start (a closed-form fit, or the ranker): refit", figures)
    if mode in ("warm", "full"):
        return Choice(mode, f"retrain.policy.mode is {mode}", figures)  # type: ignore[arg-type]
    passed = [
        f"{name} {figures[name]:.3f} >= {limit:g}"
        for name in ("unknown_item_event_share", "category_js")
        if (limit := full_when.get(name)) is not None and figures.get(name) is not None and figures[name] >= limit
    ]
    if passed:
        return Choice("full", "the shop moved too far for a warm start: " + "; ".join(passed), figures)
    return Choice("warm", "within retrain.policy.full_when: warm start from production", figures)
