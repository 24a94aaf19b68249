"""`recsys sweep run` and `recsys sweep show`: storages, study names, options, spaces."""

from __future__ import annotations

import pytest

from tests.adversarial.conftest import LAKE, RAW, Workspace, cases

# One cheap trial when a bad input slips through, so a missed refusal costs seconds, not minutes.
TINY = ("model=bpr_mf", "sweep=tiny", "trainer=smoke", "--trials", "1")

BAD_STORAGES = {
    "journal under /proc": "journal:/proc/recsys-journal.log",
    "journal under a file": f"journal:{RAW}/events.csv/journal.log",
    "journal that is a folder": "journal:data",
    "journal with no path": "journal:",
    "sqlite under /proc": "sqlite:////proc/recsys/study.db",
    "sqlite under a file": f"sqlite:///{RAW}/events.csv/study.db",
    "not a URL": "just-some-words",
    "unknown scheme": "ftp://example.invalid/study",
    "journal onto the raw events": f"journal:{RAW}/events.csv",
    "sqlite onto the lake manifest": f"sqlite:///{LAKE}/manifest.json",
}


@pytest.mark.slice("none")
@pytest.mark.parametrize("storage", cases(BAD_STORAGES, fast=2))
def test_sweep_refuses_an_unusable_storage(ws: Workspace, storage: str) -> None:
    ws.refused("sweep", "run", *TINY, "--storage", storage)


BAD_STUDIES = {
    "parent traversal": "../../data/raw",
    "absolute path": "ABSOLUTE",  # the workspace's data folder, spelt absolute (never a real system folder)
    "dot": ".",
    "slash inside": "a/b",
}


@pytest.mark.slice("A")
@pytest.mark.parametrize("study", cases(BAD_STUDIES, fast=2))
def test_sweep_refuses_a_study_name_that_is_a_path(ws: Workspace, study: str) -> None:
    study = str(ws.path("data")) if study == "ABSOLUTE" else study
    ws.refused("sweep", "run", *TINY, "--study", study)


BAD_SWEEPS_DIRS = {"the lake": LAKE, "the raw folder": RAW, "an existing file": f"{RAW}/events.csv"}


@pytest.mark.slice("A")
@pytest.mark.parametrize("target", cases(BAD_SWEEPS_DIRS, fast=1))
def test_sweep_refuses_a_sweeps_dir_inside_inputs(ws: Workspace, target: str) -> None:
    ws.refused("sweep", "run", *TINY, f"sweeps_dir={target}", "--study", "synth")


BAD_SWEEP_OPTIONS = {
    "zero trials": ("model=bpr_mf", "sweep=tiny", "trainer=smoke", "--trials", "0"),
    "zero workers": (*TINY, "--workers", "0"),
    "timeout not a duration": (*TINY, "--timeout", "soon"),
    "negative timeout": (*TINY, "--timeout", "-5"),
    "zero timeout": (*TINY, "--timeout", "0"),
    "a model without a search space": ("model=popularity", "--trials", "1"),
    "unknown search space": ("model=bpr_mf", "sweep=nosuch", "--trials", "1"),
    "unknown model": ("model=nosuch", "--trials", "1"),
    "metric not scored": (*TINY, "sweep.metrics=[val/ndcg@7]"),
    "directions mismatch": (
        *TINY,
        "sweep.metrics=[val/ndcg@10,val/recall@10]",
        "sweep.directions=[maximize,minimize,maximize]",
    ),
    "unknown direction": (*TINY, "sweep.directions=[upwards]"),
    "empty range": (*TINY, "sweep.params.model.lr.low=0.5", "sweep.params.model.lr.high=0.1"),
    "log range through zero": (*TINY, "sweep.params.model.lr.low=0"),
    "unknown parameter type": (*TINY, "sweep.params.model.lr.type=complex"),
    "empty choices": (*TINY, "sweep.params.model.dim.choices=[]"),
    "searched key the model lacks": (*TINY, "+sweep.params.model.wings={type: int, low: 1, high: 3}"),
}


@pytest.mark.slice("E")
@pytest.mark.parametrize("args", cases(BAD_SWEEP_OPTIONS, fast=3))
def test_sweep_refuses_bad_options(ws: Workspace, args: tuple[str, ...]) -> None:
    ws.refused("sweep", "run", *args)


BAD_SHOW = {
    "missing study": ("nosuch",),
    "a raw folder": (RAW,),
    "the lake": (LAKE,),
    "a file": (f"{RAW}/events.csv",),
    "negative top": ("nosuch", "--top", "-1"),
    "storage under a file": ("nosuch", "--storage", f"journal:{RAW}/events.csv/j.log"),
}


@pytest.mark.slice("E")
@pytest.mark.parametrize("args", cases(BAD_SHOW, fast=2))
def test_sweep_show_refuses_what_is_not_a_study(ws: Workspace, args: tuple[str, ...]) -> None:
    ws.refused("sweep", "show", *args)


@pytest.mark.slice("none")
@pytest.mark.slow
def test_sweep_positive_control_then_show(ws: Workspace) -> None:
    ws.succeeds("sweep", "run", *TINY, "--study", "adv")
    ws.freeze()
    ws.succeeds("sweep", "show", "adv")
