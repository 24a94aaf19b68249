"""Schema of the conf/monitor/ group (`recsys monitor`): when data drift is flagged
(recsys_cli/monitor/drift.py `DriftThresholds`)."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, model_validator

from recsys_cli.schemas._base import Int, OpenUnit, PositiveInt, Schema, fail

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

    @model_validator(mode="after")
    def _an_effect_size(self) -> Drift:
        if self.psi_threshold is None and self.js_threshold is None:
            fail("js_threshold", None, "psi_threshold and js_threshold cannot both be null (nothing could be flagged)")
        return self


class Monitor(Schema):
    """conf/monitor/: what `recsys monitor` checks and when it alerts."""

    drift: Drift
