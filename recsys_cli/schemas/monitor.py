"""Schema of conf/monitor.yaml (`recsys monitor`) and its group conf/monitor/: the
windows compared, when data drift is flagged (recsys_cli/monitoring/drift.py
`DriftThresholds`), performance and staleness alerts, and what an alert does."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from recsys_cli.schemas._base import Int, OpenUnit, Positive, PositiveInt, Schema, Text, fail
from recsys_cli.schemas.groups import Registry

Distance = Annotated[float, Field(gt=0, le=1)]  # a Jensen-Shannon distance in base 2


class Drift(Schema):
    """Thresholds of the data-drift alert: Holm-adjusted significance and a large
    enough effect (PSI or JS), on features with enough rows."""

    alpha: OpenUnit
    psi_threshold: Annotated[float, Field(gt=0)] | None
    js_threshold: Distance | None
    bins: Annotated[Int, Field(ge=2, le=1_000)]
    min_samples: PositiveInt
    max_categories: Annotated[Int, Field(ge=2, le=10_000)]
    distribution_bins: Annotated[Int, Field(ge=2, le=1_000_000)]
    top_movers: PositiveInt
    report_only: list[Text]  # "family.feature" names, e.g. item.first_seen_days

    @model_validator(mode="after")
    def _an_effect_size(self) -> Drift:
        if self.psi_threshold is None and self.js_threshold is None:
            fail("js_threshold", None, "psi_threshold and js_threshold cannot both be null (nothing could be flagged)")
        return self


class Window(Schema):
    days: PositiveInt
    history: Annotated[Int, Field(ge=0, le=104)]


class Performance(Schema):
    k: Annotated[Int, Field(ge=1, le=1_000)]
    metrics: Annotated[list[Text], Field(min_length=1)]
    resamples: Annotated[Int, Field(ge=100, le=100_000)]
    confidence: OpenUnit
    min_relative_drop: Annotated[float, Field(ge=0, lt=1)]
    segments: list[Text]


class Staleness(Schema):
    max_unknown_user_share: Annotated[float, Field(ge=0, le=1)] | None
    max_unknown_item_share: Annotated[float, Field(ge=0, le=1)] | None
    max_age_days: Positive | None
    event_log: Text | None


class Kpis(Schema):
    enabled: bool
    period: Literal["day", "week"]
    new_days: PositiveInt
    resamples: Annotated[Int, Field(ge=100, le=100_000)]
    confidence: OpenUnit


class Alert(Schema):
    exit_code: Annotated[Int, Field(ge=2, le=125)]  # 1 is an error's, and shells keep 126+
    command: Text | None
    timeout_s: Positive


class Monitor(Schema):
    """conf/monitor/: what `recsys monitor` checks and when it alerts."""

    drift: Drift
    window: Window
    performance: Performance
    staleness: Staleness
    kpis: Kpis
    alert: Alert


class MonitorConfig(Schema):
    """conf/monitor.yaml (`recsys monitor`)."""

    registry: Registry
    monitor: Monitor
    model_name: Text | None
    alias: Text
    lake: Text | None
    out_dir: Text | None
    seed: Annotated[Int, Field(ge=0)]
