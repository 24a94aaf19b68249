"""Our names as MLflow takes them: the resolved config flattened to dotted params,
and metric names in MLflow's character set (`val/ndcg@10` is `val/ndcg_at_10`)."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from omegaconf import DictConfig, OmegaConf

# Keys never logged as params: where the run is reported (a tracking URI may carry
# credentials) is not a setting of what was trained.
NOT_PARAMS = ("logger",)
# MLflow's limits on one param (keys are short; values up to 6,000 characters).
MAX_KEY, MAX_VALUE = 250, 6000
_OUTSIDE = re.compile(r"[^A-Za-z0-9_\-. :/]")


def metric_key(name: str) -> str:
    """MLflow allows letters, digits, `_ - . : /` and spaces: `@k` becomes `_at_k` and
    any other character `_`, so the same metric has the same name in every run."""
    return _OUTSIDE.sub("_", name.replace("@", "_at_"))


def metrics(values: Mapping[str, float]) -> dict[str, float]:
    return {metric_key(k): float(v) for k, v in values.items()}


def params(cfg: DictConfig | Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """Every leaf of a config as `dotted.key -> value`: strings as they are, other
    values as JSON (`0.001`, `true`, `null`, `[10, 20]`), so a param reads like the
    config.yaml it came from; lists stay whole, one param each."""
    plain = OmegaConf.to_container(cfg, resolve=True) if isinstance(cfg, DictConfig) else dict(cfg)
    assert isinstance(plain, dict)
    out: dict[str, str] = {}
    for key, value in plain.items():
        if not prefix and key in NOT_PARAMS:
            continue
        dotted = metric_key(prefix + str(key))
        if isinstance(value, dict) and value:
            out |= params(value, f"{dotted}.")
        else:
            text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
            out[dotted[:MAX_KEY]] = text if len(text) <= MAX_VALUE else text[: MAX_VALUE - 1] + "…"
    return out
