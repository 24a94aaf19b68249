"""`recsys retrain` end to end: the small synthetic shop's ALS package promoted in a
registry, retrained on its own lake (the held-out week lies after the package's
validation cutoff), and what the registry, the alias and `retrain.json` hold after
a run, a second run, a crash at each step and a real kill.

`retrain.guard.tolerance=0.99` (PROMOTES) makes a promotion certain where a test is
about crashes and not about the guard: only a candidate that loses nearly
everything is refused then."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

from recsys_cli.cli import app
from recsys_cli.models.implicit_mf import ALS
from recsys_cli.registry.store import Registry
from tests.registry.package_shop import exported

NAME = "shop-als"
QUIET = ["retrain.guard.resamples=200"]
PROMOTES = "retrain.guard.tolerance=0.99"


@pytest.fixture
def registry(tmp_path: Path, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A registry of its own per test: version 1 of shop-als, promoted to production."""
    uri = str(tmp_path / "registry")
    reg = Registry(uri)
    reg.promote(NAME, int(reg.push(exported(tmp_path_factory, "als"), NAME)["version"]), "production")
    return uri


def retrain(registry: str, out: Path, *overrides: str) -> tuple[int, str]:
    result = CliRunner().invoke(
        app, ["retrain", f"registry.uri={registry}", f"out_dir={out}", *QUIET, *overrides], catch_exceptions=False
    )
    return result.exit_code, result.output


def published(registry: str) -> list[int]:
    return [int(r["version"]) for r in Registry(registry).versions(NAME)]


def production(registry: str) -> int:
    return Registry(registry).version_of(NAME, "production")


def records(out: Path) -> dict[str, dict[str, Any]]:
    """Each retrain key's `retrain.json`, by key."""
    if not out.is_dir():
        return {}
    return {
        p.name: json.loads((p / "retrain.json").read_text()) for p in out.iterdir() if (p / "retrain.json").is_file()
    }


def only_record(out: Path) -> dict[str, Any]:
    (record,) = records(out).values()
    return record


# ----------------------------------------------------------------------------- idempotence


def test_a_second_run_on_the_same_lake_and_settings_does_nothing_new(registry: str, tmp_path: Path) -> None:
    out = tmp_path / "retrain"
    code, output = retrain(registry, out, PROMOTES)
    assert code == 0, output
    assert "promoted: candidate v2 of shop-als" in output and "retrain written:" in output
    assert published(registry) == [1, 2] and production(registry) == 2
    first = only_record(out)
    assert first["state"] == "promoted" and first["version"] == 2
    assert [h["state"] for h in first["history"]] == ["started", "decided", "pushed", "promoted"]
    alias = Registry(registry).aliases(NAME)

    code, output = retrain(registry, out, PROMOTES)
    assert code == 0, output
    assert "already retrained" in output and "(promoted, version 2): nothing new" in output
    assert published(registry) == [1, 2]
    assert Registry(registry).aliases(NAME) == alias  # not even promoted again to the same version
    assert only_record(out) == first

    # A changed setting is another retrain: here a shorter held-out window, after v2's cutoff.
    code, output = retrain(registry, out, PROMOTES, "retrain.window.eval_days=5")
    assert code == 0, output
    assert "already retrained" not in output and "candidate v3" in output
    assert published(registry) == [1, 2, 3] and len(records(out)) == 2


def test_appending_nothing_new_is_still_nothing_new(
    registry: str, tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """`retrain.append.raw`: the source's files were all ingested already, so the
    lake (a copy here: append writes to it) and with it the key stay the same."""
    import shutil

    from recsys_cli.registry.package import load_package

    lake = tmp_path / "lake"
    shutil.copytree(load_package(exported(tmp_path_factory, "als")).lineage["lake"]["dir"], lake)
    manifest = (lake / "manifest.json").read_bytes()
    args = (f"lake={lake}", "retrain.append.raw=true", PROMOTES)
    code, output = retrain(registry, tmp_path / "out", *args)
    assert code == 0, output
    assert only_record(tmp_path / "out")["lake"]["appended"]["no_op"] is True
    code, output = retrain(registry, tmp_path / "out", *args)
    assert code == 0 and "already retrained" in output, output
    assert published(registry) == [1, 2] and (lake / "manifest.json").read_bytes() == manifest


def test_the_service_event_log_is_appended_and_trained_on(
    registry: str, tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """`retrain.append.event_log`: what the service logged since joins the lake (its
    pseudonyms kept as they are), moves the window's end, and the same log again is
    nothing new."""
    import shutil

    import polars as pl

    from recsys_cli.data.lake import scan_events
    from recsys_cli.registry.package import load_package
    from recsys_cli.serving.event_log import EventLog
    from recsys_cli.serving.state import LiveEvent

    lake = tmp_path / "lake"
    shutil.copytree(load_package(exported(tmp_path_factory, "als")).lineage["lake"]["dir"], lake)
    fingerprint = json.loads((lake / "manifest.json").read_text())["pii"]["key_fingerprint"]
    events = scan_events(lake).collect()
    end = events["ts"].max().timestamp()
    users, items = events["user_id"].unique().sort()[:20], events["item_id"].unique().sort()[:5]
    logged = [
        LiveEvent(str(u), str(items[j % 5]), "purchase", end + 86_400 * (1 + j % 3))
        for j, u in enumerate(users.to_list())
    ]
    log_dir = tmp_path / "event_log"
    with EventLog(log_dir, fsync="never", key_fingerprint=fingerprint) as log:
        log.append(logged)
    args = (f"lake={lake}", f"retrain.append.event_log={log_dir}", PROMOTES)
    code, output = retrain(registry, tmp_path / "out", *args)
    assert code == 0, output
    appended = only_record(tmp_path / "out")["lake"]["appended"]
    assert appended["no_op"] is False and len(appended["live_events"]) == 1
    newest = scan_events(lake).select(pl.col("ts").max()).collect().item().timestamp()
    assert newest == pytest.approx(max(e.ts for e in logged))
    assert only_record(tmp_path / "out")["window"]["held_out"]["end"].startswith(
        pl.Series([newest * 1e6]).cast(pl.Datetime("us", "UTC")).dt.to_string("%Y-%m-%d")[0]
    )
    code, output = retrain(registry, tmp_path / "out", *args)
    assert code == 0 and "already retrained" in output, output


def test_a_lake_with_nothing_after_the_production_cutoff_has_nothing_to_retrain(registry: str, tmp_path: Path) -> None:
    # 60 held-out days reach back before the production model's cutoff: no new day to learn from.
    code, output = retrain(registry, tmp_path / "out", "retrain.window.eval_days=60")
    assert code == 0, output
    assert "nothing to retrain:" in output and "retrain.window.eval_days (60)" in output
    assert published(registry) == [1] and production(registry) == 1 and records(tmp_path / "out") == {}


# ----------------------------------------------------------------------------- what a retrain records


def test_the_candidate_version_carries_its_decision_and_the_window_and_policy_are_honoured(
    registry: str, tmp_path: Path
) -> None:
    import yaml

    out = tmp_path / "out"
    code, output = retrain(
        registry, out, PROMOTES, "retrain.window.kind=fixed", "retrain.window.train_days=30", "retrain.policy.mode=full"
    )
    assert code == 0, output
    record = only_record(out)
    (key,) = records(out)
    decision = Registry(registry).record(NAME, 2)["decision"]
    assert decision == record["decision"] and decision["retrain_key"] == key
    assert decision["production"]["version"] == 1 and decision["guard"]["promote"] is True
    assert set(decision["guard"]["metrics"]) == {"ndcg@10", "recall@10"} and decision["guard"]["reasons"]
    assert decision["held_out"]["users"]["users_compared"] > 0
    assert decision["policy"]["mode"] == "full" and decision["policy"]["reason"] == "retrain.policy.mode is full"
    assert set(decision["timings"]) >= {"split", "features", "train", "export"}
    window = decision["window"]
    assert window["cutoff"] == window["held_out"]["start"] > record["production"]["cutoff"]
    # The fixed window: 30 days before the cutoff, of which the split trains on the 23 before its validation week.
    run = Path(decision["candidate"]["run"])
    assert yaml.safe_load((run / "config.yaml").read_text())["split"]["train_days"] == 23
    assert "fit/warm_start/epochs" not in json.loads((run / "metrics.json").read_text())  # a refit
    # keep_data=false: the split and features go, the candidate's run and package stay.
    assert not (out / key / "work" / "split").exists() and not (out / key / "work" / "features").exists()
    assert run.is_dir() and Path(decision["candidate"]["package"]).is_dir()
    assert "C0" not in (out / key / "retrain.json").read_text()  # no raw customer id in the record


# ----------------------------------------------------------------------------- the guard


def test_a_deliberately_worse_candidate_is_pushed_with_its_refusal_and_production_is_kept(
    registry: str, tmp_path: Path, tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The warm start is sabotaged into the worst model there is: one factor that
    scores every item the held-out week's users went on to cart or buy below all
    the others, so no list holds a single one of them. The candidate that is
    exported, scored and pushed is that model."""
    import polars as pl

    from recsys_cli.data.lake import scan_events
    from recsys_cli.registry.package import load_package

    events = scan_events(Path(load_package(exported(tmp_path_factory, "als")).lineage["lake"]["dir"]))
    held_out = pl.col("ts") >= pl.col("ts").max() - pl.duration(days=7)  # retrain.window.eval_days
    wanted = events.filter(held_out & pl.col("event_type").is_in(["add_to_cart", "purchase"])).collect()
    wanted_items = wanted["item_id"].cast(pl.String).unique().to_numpy()
    real = ALS._warm_start

    def worst(self: ALS, *args: Any, **kwargs: Any) -> None:
        real(self, *args, **kwargs)
        assert self.items is not None
        self.user_factors[:], self.item_factors[:] = 0.0, 0.0
        self.user_factors[:, 0] = 1.0
        self.item_factors[:, 0] = -np.isin(np.asarray(self.items.tokens), wanted_items).astype(np.float32)

    monkeypatch.setattr(ALS, "_warm_start", worst)
    alias = Registry(registry).aliases(NAME)
    out = tmp_path / "out"
    code, output = retrain(registry, out, "retrain.policy.mode=warm")
    assert code == 0, output  # keeping production is a decision, not a failure
    assert "kept production: candidate v2" in output and "ndcg@10: significantly worse than production" in output
    record = only_record(out)
    assert record["state"] == "kept" and record["version"] == 2
    assert published(registry) == [1, 2] and Registry(registry).aliases(NAME) == alias
    decision = Registry(registry).record(NAME, 2)["decision"]
    assert decision["guard"]["promote"] is False
    assert any(r.startswith("ndcg@10: significantly worse than production") for r in decision["guard"]["reasons"])
    held = decision["held_out"]
    assert held["candidate"] == {"ndcg@10": 0.0, "recall@10": 0.0} and held["production"]["ndcg@10"] > 0
    assert decision["policy"]["mode"] == "warm"
    metrics = json.loads((Path(decision["candidate"]["run"]) / "metrics.json").read_text())
    assert metrics["fit/warm_start/epochs"] == 3  # ALS's default warm start

    code, output = retrain(registry, out, "retrain.policy.mode=warm")  # a rerun does not promote it either
    assert code == 0 and "already retrained" in output and "(kept, version 2)" in output
    assert published(registry) == [1, 2] and Registry(registry).aliases(NAME) == alias


def test_a_primary_metric_refuses_a_candidate_that_is_not_significantly_better(registry: str, tmp_path: Path) -> None:
    # An honest warm start on the shop's ~15 held-out users: no worse, not surely better either.
    code, output = retrain(registry, tmp_path / "out", "retrain.guard.primary=ndcg@10")
    assert code == 0, output
    assert "kept production" in output and "ndcg@10: not significantly better than production" in output
    assert only_record(tmp_path / "out")["state"] == "kept"
    assert published(registry) == [1, 2] and production(registry) == 1
    assert Registry(registry).record(NAME, 2)["decision"]["guard"]["primary"] == "ndcg@10"


# ----------------------------------------------------------------------------- crash safety, in process


class Crash(Exception):
    """Raised where a step would run: the process dies there."""


def crash(*args: Any, **kwargs: Any) -> Any:
    raise Crash


def crash_when_promoted(real: Any) -> Any:
    def write(folder: Path, record: dict[str, Any], state: str, **fields: Any) -> dict[str, Any]:
        if state == "promoted":
            raise Crash
        return real(folder, record, state, **fields)

    return write


# (where it crashes, the journal's state after, the versions published after, production after)
STEPS = {
    "train": ("recsys_cli.tasks.train.run", "started", [1], 1),
    "export": ("recsys_cli.tasks.retrain._export", "started", [1], 1),
    "head-to-head": ("recsys_cli.retraining.head_to_head.head_to_head", "started", [1], 1),
    "guard": ("recsys_cli.evaluation.guard.promotion_decision", "started", [1], 1),
    "push": ("recsys_cli.registry.store.Registry.push", "decided", [1], 1),
    "promote": ("recsys_cli.registry.store.Registry.promote", "pushed", [1, 2], 1),
    "final-record": ("recsys_cli.retraining.journal.write", "pushed", [1, 2], 2),  # the alias moved, its record not
}


@pytest.mark.parametrize(("step", "state", "versions", "alias"), list(STEPS.values()), ids=list(STEPS))
def test_a_crash_at_any_step_leaves_production_and_a_rerun_finishes_the_retrain(
    registry: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    step: str,
    state: str,
    versions: list[int],
    alias: int,
) -> None:
    from recsys_cli.retraining import journal

    out = tmp_path / "out"
    monkeypatch.setattr(step, crash_when_promoted(journal.write) if step.endswith("journal.write") else crash)
    with pytest.raises(Crash):
        retrain(registry, out, PROMOTES)
    assert only_record(out)["state"] == state
    assert published(registry) == versions and production(registry) == alias
    monkeypatch.undo()

    if state != "started":  # the candidate was built and scored: the rerun only finishes it
        monkeypatch.setattr("recsys_cli.tasks.retrain._train_chain", crash)
    if state == "pushed":  # and it is in the registry already
        monkeypatch.setattr("recsys_cli.registry.store.Registry.push", crash)
    code, output = retrain(registry, out, PROMOTES)
    assert code == 0, output
    assert "promoted: candidate v2" in output
    record = only_record(out)
    assert record["state"] == "promoted" and record["version"] == 2
    assert published(registry) == [1, 2] and production(registry) == 2
    code, output = retrain(registry, out, PROMOTES)
    assert code == 0 and "already retrained" in output and published(registry) == [1, 2]


def test_a_crash_right_after_the_push_published_does_not_publish_the_candidate_twice(
    registry: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = Registry.push

    def push_then_crash(self: Registry, *args: Any, **kwargs: Any) -> dict[str, Any]:
        real(self, *args, **kwargs)
        raise Crash

    monkeypatch.setattr(Registry, "push", push_then_crash)
    with pytest.raises(Crash):
        retrain(registry, tmp_path / "out", PROMOTES)
    assert published(registry) == [1, 2] and production(registry) == 1
    monkeypatch.undo()
    code, output = retrain(registry, tmp_path / "out", PROMOTES)
    assert code == 0, output
    assert published(registry) == [1, 2] and production(registry) == 2


# ----------------------------------------------------------------------------- crash safety, a real kill

# `recsys retrain` as `python -m recsys_cli` runs it (recsys_cli/__main__.py), with one step
# made to stop and wait where the test kills it: the kill lands mid-step on every run,
# however fast the rest is.
DRIVER = """
import os, sys, time
from pathlib import Path


def wait_to_be_killed(*args, **kwargs):
    Path(os.environ["RETRAIN_TEST_REACHED"]).write_text("reached")
    time.sleep(600)


if os.environ["RETRAIN_TEST_STOP"] == "train":
    import recsys_cli.tasks.train

    recsys_cli.tasks.train.run = wait_to_be_killed
else:  # mid-push: after the candidate's first file is in the registry
    from recsys_cli.registry.storage import Storage

    real, sent = Storage.upload, []

    def upload(self, *args, **kwargs):
        if sent:
            wait_to_be_killed()
        sent.append(real(self, *args, **kwargs))

    Storage.upload = upload

from recsys_cli.cli import main

sys.argv = ["recsys", *sys.argv[1:]]
main()
"""


@pytest.mark.parametrize(("stop", "state"), [("train", "started"), ("push", "decided")])
def test_a_killed_retrain_leaves_production_and_a_rerun_finishes_it(
    registry: str, tmp_path: Path, stop: str, state: str
) -> None:
    out, reached = tmp_path / "out", tmp_path / "reached"
    driver = tmp_path / "driver.py"
    driver.write_text(DRIVER)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "RETRAIN_TEST_STOP": stop, "RETRAIN_TEST_REACHED": str(reached)}
    args = ["retrain", f"registry.uri={registry}", f"out_dir={out}", *QUIET, PROMOTES]
    proc = subprocess.Popen(
        [sys.executable, str(driver), *args], cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        deadline = time.monotonic() + 300
        while not reached.exists():
            if proc.poll() is not None:
                pytest.fail(f"retrain exited {proc.returncode} before it was killed: {proc.communicate()[1]!r}")
            assert time.monotonic() < deadline, "the retrain never reached the step to kill it at"
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
        proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == -signal.SIGKILL
    assert only_record(out)["state"] == state
    assert published(registry) == [1] and production(registry) == 1  # a half-uploaded version is not one
    if stop == "push":  # what the killed push left is an abandoned claim that `recsys registry gc` removes
        assert Registry(registry).gc(NAME, keep=10, dry_run=True, stale_after=timedelta(0)).abandoned == [2]

    code, output = retrain(registry, out, PROMOTES)
    assert code == 0, output
    record = only_record(out)
    (new,) = set(published(registry)) - {1}
    assert record["state"] == "promoted" and record["version"] == new and production(registry) == new


def test_a_warm_start_fine_tunes_no_longer_than_a_refit_would_train() -> None:
    from recsys_cli.tasks.retrain import _warm_epochs

    sasrec = "recsys_cli.models.sasrec.SASRec"  # fine-tunes 2 epochs by default
    assert _warm_epochs(None, sasrec, 1.0) == 1  # production peaked after one epoch
    assert _warm_epochs(None, sasrec, 6.0) == 2
    assert _warm_epochs(None, sasrec, None) is None  # the model's default, uncapped
    assert _warm_epochs(4, sasrec, 1.0) == 4  # configured: as given
