"""`recsys reproduce`: malformed experiment files, and work folders or outputs over other data."""

from __future__ import annotations

import pytest

from tests.adversarial.conftest import LAKE, RAW, SPLIT, Workspace, cases

# A chain small enough that a missed refusal costs seconds.
TINY = """\
description: tiny chain for the adversarial suite
preset: synth_small
data:
  source: synth
  generator: {seed: 42, n_events: 3000, n_days: 40, start: "2026-01-01"}
chain:
  parts: [val]
  check_leakage: false
expected:
  fold-0/val/users: {value: 16, abs: 100000}
"""


def _experiment(ws: Workspace, text: str | bytes, name: str = "exp.yaml") -> str:
    path = ws.path(name)
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return name


BAD_EXPERIMENTS: dict[str, str | bytes] = {
    "empty file": "",
    "a YAML list": "- preset\n- data\n",
    "not YAML": "preset: [unclosed\n",
    "binary bytes": bytes(range(256)),
    "unknown top-level key": TINY + "surprise: 1\n",
    "unknown preset": TINY.replace("synth_small", "nosuch"),
    "preset path traversal": TINY.replace("synth_small", "../../../etc/passwd"),
    "unknown source": TINY.replace("source: synth", "source: nosuch"),
    "negative events": TINY.replace("n_events: 3000", "n_events: -5"),
    "zero days": TINY.replace("n_days: 40", "n_days: 0"),
    "start not a date": TINY.replace('"2026-01-01"', "someday"),
    "unknown part": TINY.replace("parts: [val]", "parts: [train]"),
    "no parts": TINY.replace("parts: [val]", "parts: []"),
    "check_leakage not a bool": TINY.replace("check_leakage: false", "check_leakage: maybe"),
    "negative tolerance": TINY.replace("abs: 100000", "abs: -1"),
    "expected metric unknown": TINY.replace("fold-0/val/users", "fold-0/val/happiness@10"),
    "expected for a part not run": TINY.replace("fold-0/val/users", "fold-0/test/users"),
    "expected empty": TINY.replace("expected:\n  fold-0/val/users: {value: 16, abs: 100000}\n", "expected: {}\n"),
    "expected value not a number": TINY.replace("value: 16", "value: many"),
    "file-based source without raw": TINY.replace("source: synth", "source: movielens100k"),
    "raw folder outside the workdir": TINY.replace("source: synth", "source: generic\n  raw: ../../../etc"),
}


@pytest.mark.slice("E")
@pytest.mark.parametrize("text", cases(BAD_EXPERIMENTS, fast=3))
def test_reproduce_refuses_a_malformed_experiment(ws: Workspace, text: str | bytes) -> None:
    ws.refused("reproduce", _experiment(ws, text), "--workdir", "repro")


@pytest.mark.slice("E")
@pytest.mark.parametrize(
    "target", cases({"missing": "nosuch.yaml", "a folder": "data", "a CSV": f"{RAW}/events.csv"}, fast=1)
)
def test_reproduce_refuses_what_is_not_an_experiment(ws: Workspace, target: str) -> None:
    ws.refused("reproduce", target, "--workdir", "repro")


BAD_WORKDIRS = {
    "the working directory": ".",
    "the raw folder": RAW,
    "the lake": LAKE,
    "the split": SPLIT,
    "a run": "RUN",
    "an existing file": f"{RAW}/events.csv",
    "the working directory spelt differently": "./data/..",
}


@pytest.mark.slice("A")
@pytest.mark.parametrize("workdir", cases(BAD_WORKDIRS, fast=2))
def test_reproduce_refuses_a_workdir_over_other_outputs(ws: Workspace, workdir: str) -> None:
    workdir = ws.runs["ease"] if workdir == "RUN" else workdir
    ws.refused("reproduce", _experiment(ws, TINY), "--workdir", workdir)


BAD_OUTS = {
    "the raw events file": f"{RAW}/events.csv",
    "the lake manifest": f"{LAKE}/manifest.json",
    "a folder": "runs",
    "the experiment file itself": "exp.yaml",
    "under a file": f"{RAW}/events.csv/result.json",
}


@pytest.mark.slice("A")
@pytest.mark.parametrize("out", cases(BAD_OUTS, fast=2))
def test_reproduce_out_never_overwrites_what_is_not_ours(ws: Workspace, out: str) -> None:
    ws.refused("reproduce", _experiment(ws, TINY), "--workdir", "repro", "--out", out)


@pytest.mark.slow
@pytest.mark.slice("A")
def test_reproduce_workdir_holding_foreign_files_is_refused(ws: Workspace) -> None:
    """A folder of the user's own notes is not a reproduction to replace."""
    ws.path("notes").mkdir()
    (ws.path("notes") / "data").mkdir()
    (ws.path("notes") / "data" / "keep.txt").write_text("mine")
    ws.refused("reproduce", _experiment(ws, TINY), "--workdir", "notes")


@pytest.mark.slice("none")
@pytest.mark.slow
def test_reproduce_positive_control(ws: Workspace) -> None:
    ws.succeeds("reproduce", _experiment(ws, TINY), "--workdir", "repro")
