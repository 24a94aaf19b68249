"""conf/retrain.yaml and its group conf/retrain/ are validated like every config
(recsys_cli/schemas/retrain.py), and so are the keys the retrain added to others:
train's `warm_start` and the global temporal split's `train_days`. A bad value is
one line naming the key, the value and the rule (`RETRAIN_BAD`, checked with every
other config's in tests/test_config_schema.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from recsys_cli.config import compose
from recsys_cli.errors import ConfigError
from recsys_cli.retraining.window import RetrainWindow

RETRAIN_BAD = [
    ("retrain", ["+retrain.colour=red"], "retrain.colour = 'red': unknown key; known: append, window, policy, guard"),
    ("retrain", ["+retrain.window.colour=1"], "retrain.window.colour = 1: unknown key"),
    ("retrain", ["+retrain.guard.alpha=0.05"], "retrain.guard.alpha = 0.05: unknown key"),
    ("retrain", ["+extra=1"], "extra = 1: unknown key"),
    (
        "retrain",
        ["retrain.guard.metrics=[foo]"],
        "retrain.guard.metrics = 'foo': must be a ranking metric at a cut-off",
    ),
    ("retrain", ["retrain.guard.metrics=[ndcg@0]"], "retrain.guard.metrics = 'ndcg@0': must be a ranking metric"),
    ("retrain", ["retrain.guard.metrics=[]"], "retrain.guard.metrics = []: must hold at least 1 item(s)"),
    ("retrain", ["retrain.guard.resamples=10"], "retrain.guard.resamples = 10: must be >= 100"),
    ("retrain", ["retrain.guard.tolerance=1"], "retrain.guard.tolerance = 1: must be < 1"),
    ("retrain", ["retrain.guard.confidence=1"], "retrain.guard.confidence = 1: must be < 1"),
    (
        "retrain",
        ["retrain.window.kind=fixed", "retrain.window.train_days=7"],
        "retrain.window.train_days = 7.0: must exceed val_days (7.0) for a fixed window",
    ),
    (
        "retrain",
        ["retrain.window.kind=rolling"],
        "retrain.window.kind = 'rolling': must be one of 'growing' or 'fixed'",
    ),
    ("retrain", ["retrain.window.eval_days=0"], "retrain.window.eval_days = 0: must be > 0"),
    ("retrain", ["retrain.policy.mode=sometimes"], "retrain.policy.mode = 'sometimes': must be one of 'auto', 'warm'"),
    ("retrain", ["retrain.policy.full_when.category_js=0"], "retrain.policy.full_when.category_js = 0: must be > 0"),
    ("retrain", ["retrain.policy.full_when.category_js=1.5"], "retrain.policy.full_when.category_js = 1.5: must be <="),
    ("retrain", ["retrain.policy.warm.epochs=-1"], "retrain.policy.warm.epochs = -1: must be >= 0"),
    ("retrain", ["seed=-1"], "seed = -1: must be >= 0"),
    ("train", ["warm_start={package:x,colour:red}"], "warm_start.colour = 'red': unknown key; known: package"),
    ("train", ["warm_start={package:x,epochs:-1}"], "warm_start.epochs = -1: must be >= 0"),
    ("train", ["warm_start={epochs:1}"], "warm_start.package: is required"),
    ("split", ["split.train_days=0"], "split.train_days = 0: must be > 0"),
]


def test_a_bad_primary_metric_is_named_as_the_primary() -> None:
    with pytest.raises(ConfigError, match=r"retrain\.guard\.primary = 'auc@10': must be a ranking metric"):
        compose("retrain", ["retrain.guard.primary=auc@10"])


@pytest.mark.parametrize(
    "overrides",
    [
        [],
        ["retrain.window.kind=fixed", "retrain.window.train_days=8", "retrain.window.val_days=7"],
        ["retrain.policy.full_when.category_js=null", "retrain.policy.full_when.unknown_item_event_share=null"],
        ["retrain.policy.warm.epochs=0", "retrain.policy.warm.only_new=true", "retrain.guard.primary=recall@20"],
        ["retrain.append.raw=true", "retrain.append.event_log=logs/events"],
    ],
    ids=["default", "fixed", "no-thresholds", "warm-and-primary", "append"],
)
def test_good_settings_validate(overrides: list[str]) -> None:
    compose("retrain", overrides)


def test_a_growing_window_ignores_train_days() -> None:
    cfg = compose("retrain", ["retrain.window.kind=growing", "retrain.window.train_days=3"])
    assert cfg.retrain.window.train_days == 3  # kept, unused: no error for a setting that is off


@pytest.mark.parametrize("train_days", [None, 30.0])
def test_the_split_a_retrain_window_builds_validates_as_a_split_config(train_days: float | None) -> None:
    end = datetime(2026, 3, 31, 12, tzinfo=UTC)
    window = RetrainWindow.of(end, end - timedelta(days=20), 7, 7, train_days)
    values = {k: v for k, v in window.split_config().items() if k not in ("_target_", "name")}
    overrides = [
        f"split.{k}={'null' if v is None else repr(v) if isinstance(v, str) else v}" for k, v in values.items()
    ]
    cfg = compose("split", overrides)
    assert cfg.split._target_ == window.split_config()["_target_"]
    assert cfg.split.train_days == (None if train_days is None else 23)
