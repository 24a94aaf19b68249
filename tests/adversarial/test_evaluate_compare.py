"""`recsys evaluate` and `recsys compare`: wrong runs, wrong windows, wrong places, bad options."""

from __future__ import annotations

import json
import shutil

import polars as pl
import pytest

from tests.adversarial.conftest import LAKE, RAW, SPLIT, SYNTH, Workspace, cases, edit_json, flip_byte, run_cli

# ---------------------------------------------------------------- evaluate


BAD_EVAL_CONFIG = {
    "zero k": ("eval.ks=[0]",),
    "negative k": ("eval.ks=[-1]",),
    "k not a number": ("eval.ks=[ten]",),
    "empty ks": ("eval.ks=[]",),
    "unknown part": ("part=train",),
    "zero resamples": ("eval.bootstrap.resamples=0",),
    "negative resamples": ("eval.bootstrap.resamples=-5",),
    "zero batch users": ("batch_users=0",),
    "unknown users filter": ("eval.users=everyone",),
    "unknown key": ("eval.nosuch=1",),
}


@pytest.mark.slice("E")
@pytest.mark.parametrize("overrides", cases(BAD_EVAL_CONFIG, fast=2))
def test_invalid_evaluate_config_is_refused(ws: Workspace, overrides: tuple[str, ...]) -> None:
    ws.refused("evaluate", ws.runs["ease"], *overrides)


BAD_EVAL_OUT = {
    "the raw folder": RAW,
    "the lake": LAKE,
    "the split": SPLIT,
    "the working directory": ".",
    "another run": "OTHER_RUN",
    "the run itself": "THE_RUN",
    "an existing file": f"{RAW}/events.csv",
}


@pytest.mark.slice("A")
@pytest.mark.parametrize("out", cases(BAD_EVAL_OUT, fast=2))
def test_evaluate_out_dir_that_is_not_an_evaluation_is_refused(ws: Workspace, out: str) -> None:
    out = {"OTHER_RUN": ws.runs["popularity"], "THE_RUN": ws.runs["ease"]}.get(out, out)
    ws.refused("evaluate", ws.runs["ease"], f"out_dir={out}")


@pytest.mark.slice("B1")
@pytest.mark.parametrize(
    "target",
    cases(
        {
            "missing": "runs/ease/nosuch",
            "a file": f"{RAW}/events.csv",
            "the lake": LAKE,
            ".": ".",
            "the runs root": "runs",
        },
        fast=1,
    ),
)
def test_evaluate_refuses_what_is_not_a_run(ws: Workspace, target: str) -> None:
    ws.refused("evaluate", target)


@pytest.mark.slice("B1")
def test_evaluate_refuses_flipped_weights(ws: Workspace) -> None:
    flip_byte(ws.path(ws.runs["ease"]) / "model" / "weights.safetensors")
    ws.refused("evaluate", ws.runs["ease"])


@pytest.mark.slice("B1")
def test_evaluate_refuses_when_the_split_changed_since_training(ws: Workspace) -> None:
    """The run's split was rebuilt with another protocol: scoring it would judge another window."""
    shutil.rmtree(ws.path(SPLIT))
    shutil.copytree(ws.path("data/splits/synth/global_temporal-purchases"), ws.path(SPLIT))
    ws.refused("evaluate", ws.runs["ease"], may_change=[SPLIT])


@pytest.mark.slice("B1")
@pytest.mark.slow
def test_evaluate_from_another_folder_scores_the_same_window(ws: Workspace) -> None:
    """Another shop in the working directory must not be scored instead of the run's own data."""
    other = ws.path("elsewhere")
    other.mkdir()
    for args in (("datasets", "synth", *SYNTH, "data.generator.seed=7"), ("ingest",), ("split",), ("features",)):
        assert run_cli(args, other).returncode == 0
    run = ws.path(ws.runs["ease"])
    home = ws.run("evaluate", run)
    assert home.returncode == 0, home.describe()
    expected = json.loads((run / "eval" / "val" / "metrics.json").read_text())
    away = run_cli(["evaluate", run], other)
    if away.returncode == 0:
        got = json.loads((run / "eval" / "val" / "metrics.json").read_text())
        got.pop("created_at"), expected.pop("created_at")  # when it ran, the one thing that may differ
        assert got == expected, "evaluate from another folder scored another shop's data"
    else:
        lines = [line for line in away.stderr.splitlines() if line.strip()]
        assert len(lines) == 1 and "Traceback" not in away.stderr, away.describe()


# ---------------------------------------------------------------- compare


@pytest.mark.slice("none")
def test_compare_a_run_with_itself_is_refused(ws: Workspace) -> None:
    ws.refused("compare", ws.runs["ease"], ws.runs["ease"], "--resamples", "50")


@pytest.mark.slow
@pytest.mark.slice("none")
def test_compare_a_run_with_itself_through_another_spelling_is_refused(ws: Workspace) -> None:
    run = ws.runs["ease"]
    ws.refused("compare", run, f"./{run}/", "--resamples", "50")


@pytest.mark.slice("B1")
@pytest.mark.parametrize(
    "other",
    ["popularity_purchases", "popularity_test"],
    ids=["another target", "another part"],
)
def test_compare_runs_of_different_windows_is_refused(ws: Workspace, other: str) -> None:
    ws.refused("compare", ws.runs["popularity"], ws.runs[other], "--resamples", "50")


@pytest.mark.slice("B1")
def test_compare_with_a_forged_per_user_file_is_refused(ws: Workspace) -> None:
    """per_user.parquet rewritten (NaN scores): the run's integrity record must catch it."""
    path = ws.path(ws.runs["ease"]) / "per_user.parquet"
    frame = pl.read_parquet(path)
    metrics = [c for c in frame.columns if "@" in c]
    frame.with_columns(pl.lit(float("nan")).alias(c) for c in metrics).write_parquet(path)
    ws.refused("compare", ws.runs["popularity"], ws.runs["ease"], "--resamples", "50")


@pytest.mark.slow
@pytest.mark.slice("B1")
def test_compare_with_a_missing_per_user_file_is_refused(ws: Workspace) -> None:
    (ws.path(ws.runs["ease"]) / "per_user.parquet").unlink()
    ws.refused("compare", ws.runs["popularity"], ws.runs["ease"], "--resamples", "50")


@pytest.mark.slow
@pytest.mark.slice("B1")
def test_compare_with_a_flipped_byte_in_per_user_is_refused(ws: Workspace) -> None:
    flip_byte(ws.path(ws.runs["ease"]) / "per_user.parquet")
    ws.refused("compare", ws.runs["popularity"], ws.runs["ease"], "--resamples", "50")


@pytest.mark.slice("B1")
def test_compare_with_edited_run_config_window_is_refused(ws: Workspace) -> None:
    """config.yaml edited to claim the other run's target: lineage must not be taken on trust."""
    path = ws.path(ws.runs["popularity_purchases"]) / "config.yaml"
    path.write_text(path.read_text().replace("purchases", "engagement"))
    ws.refused("compare", ws.runs["popularity"], ws.runs["popularity_purchases"], "--resamples", "50")


BAD_COMPARE_OPTIONS = {
    "zero resamples": ("--resamples", "0"),
    "negative resamples": ("--resamples", "-10"),
    "alpha above one": ("--alpha", "2"),
    "alpha zero": ("--alpha", "0"),
    "alpha one": ("--alpha", "1"),
    "alpha nan": ("--alpha", "nan"),
    "unknown metric": ("--metric", "nosuch@10"),
    "metric at an unscored k": ("--metric", "ndcg@7"),
    "metric at k zero": ("--metric", "ndcg@0"),
    "metric that is the user column": ("--metric", "user_id"),
    "seed not a number": ("--seed", "abc"),
}


@pytest.mark.slice("E")
@pytest.mark.parametrize("options", cases(BAD_COMPARE_OPTIONS, fast=2))
def test_compare_refuses_bad_options(ws: Workspace, options: tuple[str, ...]) -> None:
    ws.refused("compare", ws.runs["popularity"], ws.runs["ease"], *options)


@pytest.mark.slow
@pytest.mark.slice("E")
def test_compare_refuses_a_single_run(ws: Workspace) -> None:
    ws.refused("compare", ws.runs["popularity"], "--resamples", "50")


@pytest.mark.slow
@pytest.mark.slice("B1")
def test_compare_refuses_a_missing_run(ws: Workspace) -> None:
    ws.refused("compare", ws.runs["popularity"], "runs/ease/nosuch", "--resamples", "50")


BAD_COMPARE_OUT = {
    "the raw events file": f"{RAW}/events.csv",
    "the lake manifest": f"{LAKE}/manifest.json",
    "a folder": "runs",
    "the run's metrics": "RUN_METRICS",
    "under a file": f"{RAW}/events.csv/out.json",
}


@pytest.mark.slice("A")
@pytest.mark.parametrize("out", cases(BAD_COMPARE_OUT, fast=2))
def test_compare_out_never_overwrites_what_is_not_ours(ws: Workspace, out: str) -> None:
    if out == "RUN_METRICS":
        out = f"{ws.runs['ease']}/metrics.json"
    ws.refused("compare", ws.runs["popularity"], ws.runs["ease"], "--resamples", "50", "--out", out)


@pytest.mark.slice("F")
def test_compare_positive_control(ws: Workspace) -> None:
    result = ws.succeeds("compare", ws.runs["popularity"], ws.runs["ease"], "--resamples", "50", "--out", "cmp.json")
    assert json.loads(ws.path("cmp.json").read_text()), result.describe()


@pytest.mark.slow
@pytest.mark.slice("B1")
def test_compare_a_run_whose_model_class_was_tampered(ws: Workspace) -> None:
    """compare reads per-user metrics only, but a run with a forged model.json is not a run to trust."""

    def edit(m: dict) -> dict:
        m["class"] = "os.system"
        m["params"] = {"command": "touch PWNED"}
        return m

    edit_json(ws.path(ws.runs["ease"]) / "model" / "model.json", edit)
    ws.refused("compare", ws.runs["popularity"], ws.runs["ease"], "--resamples", "50")
    assert not ws.path("PWNED").exists()


@pytest.mark.slice("A")
def test_compare_out_through_a_symlink_to_the_lake_manifest_is_refused(ws: Workspace) -> None:
    ws.path("cmp-link.json").symlink_to(ws.path(LAKE) / "manifest.json")
    ws.refused("compare", ws.runs["popularity"], ws.runs["ease"], "--resamples", "50", "--out", "cmp-link.json")
