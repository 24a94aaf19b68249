"""`recsys abtest`: output folders, arms that do not belong together, tampered runs, bad settings."""

from __future__ import annotations

import pytest

from tests.adversarial.conftest import FEATURES, LAKE, RAW, SPLIT, Workspace, cases, edit_json, flip_byte

BAD_OUTS = {
    "the runs folder": "runs",
    "the raw folder": RAW,
    "the data folder": "data",
    "the lake": LAKE,
    "the split": SPLIT,
    "the features": FEATURES,
    "the working directory": ".",
    "the control run": "CONTROL",
    "a model's runs folder": "runs/ease",
    "an existing file": f"{RAW}/events.csv",
    "under a file": f"{RAW}/events.csv/abtest",
    "a comparison-looking folder without manifest": "runs/notes",
}


@pytest.mark.slice("A")
@pytest.mark.parametrize("out", cases(BAD_OUTS, fast=4))
def test_abtest_out_that_is_not_an_abtest_is_refused(ws: Workspace, out: str) -> None:
    if out == "CONTROL":
        out = ws.runs["popularity"]
    if out == "runs/notes":
        ws.path(out).mkdir()
        (ws.path(out) / "todo.txt").write_text("keep me")
    ws.refused("abtest", ws.runs["popularity"], ws.runs["ease"], "--out", out)


@pytest.mark.slow
@pytest.mark.slice("A")
def test_abtest_out_symlinked_to_the_runs_folder_is_refused(ws: Workspace) -> None:
    ws.path("ab-link").symlink_to(ws.path("runs"), target_is_directory=True)
    ws.refused("abtest", ws.runs["popularity"], ws.runs["ease"], "--out", "ab-link")


@pytest.mark.slow
@pytest.mark.slice("A")
def test_abtest_rerun_over_its_own_output_is_allowed(ws: Workspace) -> None:
    first = ws.run("abtest", ws.runs["popularity"], ws.runs["ease"], "--out", "runs/abtests/mine")
    assert first.returncode == 0, first.describe()
    ws.freeze()
    ws.succeeds(
        "abtest", ws.runs["popularity"], ws.runs["ease"], "--out", "runs/abtests/mine", may_change=["runs/abtests/mine"]
    )


@pytest.mark.slice("B1")
@pytest.mark.parametrize(
    "treatment",
    ["popularity_purchases", "popularity_test"],
    ids=["another split target", "another part"],
)
def test_abtest_of_runs_of_different_windows_is_refused(ws: Workspace, treatment: str) -> None:
    ws.refused("abtest", ws.runs["popularity"], ws.runs[treatment])


@pytest.mark.slice("B1")
def test_abtest_refuses_a_tampered_model_class(ws: Workspace) -> None:
    def edit(m: dict) -> dict:
        m["class"] = "os.system"
        m["params"] = {"command": "touch PWNED"}
        return m

    edit_json(ws.path(ws.runs["ease"]) / "model" / "model.json", edit)
    ws.refused("abtest", ws.runs["popularity"], ws.runs["ease"])
    assert not ws.path("PWNED").exists()


@pytest.mark.slice("B1")
def test_abtest_refuses_flipped_weights(ws: Workspace) -> None:
    flip_byte(ws.path(ws.runs["ease"]) / "model" / "weights.safetensors")
    ws.refused("abtest", ws.runs["popularity"], ws.runs["ease"])


@pytest.mark.slice("B1")
@pytest.mark.parametrize(
    "target", ["runs/ease/nosuch", f"{RAW}/events.csv", LAKE], ids=["missing", "a file", "the lake"]
)
def test_abtest_refuses_what_is_not_a_run(ws: Workspace, target: str) -> None:
    ws.refused("abtest", ws.runs["popularity"], target)


BAD_ABTEST_CONFIG = {
    "zero slate": ("abtest.slate_size=0",),
    "negative slate": ("abtest.slate_size=-3",),
    "control share above one": ("abtest.assignment.control=1.5",),
    "negative treatment share": ("abtest.assignment.treatment=-0.2",),
    "shares above one together": ("abtest.assignment.control=0.8", "abtest.assignment.treatment=0.8"),
    "zero treatment share": ("abtest.assignment.treatment=0",),
    "alpha zero": ("abtest.alpha=0",),
    "alpha above one": ("abtest.alpha=1.5",),
    "power above one": ("abtest.power=2",),
    "zero target lift": ("abtest.target_lift=0",),
    "negative target lift": ("abtest.target_lift=-0.1",),
    "zero resamples": ("abtest.resamples=0",),
    "unknown primary metric": ("abtest.primary_metric=happiness",),
    "negative clip": ("abtest.offpolicy.clip=-1",),
    "unknown simulator": ("abtest/simulator=nosuch",),
    "seed not a number": ("seed=abc",),
    "unknown part": ("abtest.part=train",),
    "empty action events": ("abtest.offpolicy.action_events=[]",),
    "unknown action event": ("abtest.offpolicy.action_events=[teleport]",),
}


@pytest.mark.slice("E")
@pytest.mark.parametrize("overrides", cases(BAD_ABTEST_CONFIG, fast=3))
def test_invalid_abtest_config_is_refused(ws: Workspace, overrides: tuple[str, ...]) -> None:
    ws.refused("abtest", ws.runs["popularity"], ws.runs["ease"], *overrides)


@pytest.mark.slow
@pytest.mark.slice("none")
def test_abtest_of_a_run_with_itself_is_clean(ws: Workspace) -> None:
    """An A/A test is legitimate; it must finish or refuse cleanly, never crash."""
    ws.handled("abtest", ws.runs["ease"], ws.runs["ease"], "--out", "runs/abtests/aa")
