"""`recsys train` and `recsys recommend`: bad hyperparameters, tampered run folders, bad users files."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import polars as pl
import pytest

from tests.adversarial.conftest import LAKE, RAW, SPLIT, Workspace, cases, edit_json, flip_byte

# ---------------------------------------------------------------- hyperparameters (slice E)

BAD_TRAIN_CONFIG = {
    "negative l2": ("model=ease", "model.l2=-1"),
    "l2 not a number": ("model=ease", "model.l2=abc"),
    "nan l2": ("model=ease", "model.l2=nan"),
    "zero max items": ("model=ease", "model.max_items=0"),
    "zero epochs": ("model=bpr_mf", "trainer=smoke", "trainer.max_epochs=0"),
    "negative epochs": ("model=bpr_mf", "trainer=smoke", "trainer.max_epochs=-1"),
    "zero dim": ("model=bpr_mf", "trainer=smoke", "model.dim=0"),
    "negative dim": ("model=bpr_mf", "trainer=smoke", "model.dim=-8"),
    "negative lr": ("model=bpr_mf", "trainer=smoke", "model.lr=-0.1"),
    "infinite lr": ("model=bpr_mf", "trainer=smoke", "model.lr=inf"),
    "zero batch": ("model=bpr_mf", "trainer=smoke", "model.batch_size=0"),
    "negative weight decay": ("model=bpr_mf", "trainer=smoke", "model.weight_decay=-1"),
    "dropout above one": ("model=two_tower", "trainer=smoke", "model.dropout=1.5"),
    "zero temperature": ("model=two_tower", "trainer=smoke", "model.temperature=0"),
    "zero neighbours": ("model=item_knn", "model.k=0"),
    "negative shrink": ("model=item_knn", "model.shrink=-10"),
    "seed not a number": ("model=popularity", "seed=abc"),
    "negative seed": ("model=popularity", "seed=-1"),
    "unknown model": ("model=nosuch",),
    "unknown part": ("model=popularity", "part=train"),
    "missing fold": ("model=popularity", "fold=fold-9"),
    "zero k in eval.ks": ("model=popularity", "eval.ks=[0]"),
    "negative k in eval.ks": ("model=popularity", "eval.ks=[-5]"),
    "eval.ks not a list": ("model=popularity", "eval.ks=ten"),
    "zero batch users": ("model=popularity", "eval.batch_users=0"),
    "unknown trainer accelerator": ("model=bpr_mf", "trainer=smoke", "trainer.accelerator=abacus"),
    "model target not ours": ("model=popularity", "model._target_=os.system"),
}


@pytest.mark.slice("E")
@pytest.mark.parametrize("overrides", cases(BAD_TRAIN_CONFIG, fast=5))
def test_invalid_train_config_is_refused(ws: Workspace, overrides: tuple[str, ...]) -> None:
    ws.refused("train", *overrides, "runs_dir=runs-fresh")


BAD_RUNS_DIRS = {"the raw folder": RAW, "the lake": LAKE, "the split": SPLIT, "an existing file": f"{RAW}/events.csv"}


@pytest.mark.slice("A")
@pytest.mark.parametrize("target", cases(BAD_RUNS_DIRS, fast=1))
def test_runs_dir_inside_inputs_is_refused(ws: Workspace, target: str) -> None:
    ws.refused("train", "model=popularity", f"runs_dir={target}")


# ---------------------------------------------------------------- tampered run folders (slice B1)


def _model_json(ws: Workspace, run: str) -> Path:
    return ws.path(run) / "model" / "model.json"


def _set_class(name: str, params: dict) -> Callable[[dict], dict]:
    def edit(m: dict) -> dict:
        m["class"] = name
        m["params"] = params
        return m

    return edit


FOREIGN_CLASSES = {
    "os.system": ("os.system", {"command": "touch PWNED"}),
    "subprocess.call": ("subprocess.call", {"args": ["touch", "PWNED"]}),
    "builtins.exec": ("builtins.exec", {"source": "open('PWNED','w')"}),
    "pathlib.Path.touch": ("pathlib.Path", {}),
    "a project function": ("recsys_cli.data.lake.publish", {}),
    "a project class that is no model": ("recsys_cli.errors.RecsysError", {}),
    "a module that does not exist": ("nosuch.module.Model", {}),
    "model class with a foreign param": ("recsys_cli.models.ease.EASE", {"l2": 500.0, "__init__": "os.system"}),
}


@pytest.mark.slice("B1")
@pytest.mark.parametrize("command", ["recommend", "evaluate"])
@pytest.mark.parametrize("cls,params", cases(FOREIGN_CLASSES, fast=3, unpack=True))
def test_tampered_model_class_is_never_loaded(ws: Workspace, command: str, cls: str, params: dict) -> None:
    edit_json(_model_json(ws, ws.runs["ease"]), _set_class(cls, params))
    ws.refused(command, ws.runs["ease"])
    assert not ws.path("PWNED").exists(), "a command named in model.json ran"


def flipped_weights(ws: Workspace, run: str) -> None:
    flip_byte(ws.path(run) / "model" / "weights.safetensors")


def flipped_weights_header(ws: Workspace, run: str) -> None:
    flip_byte(ws.path(run) / "model" / "weights.safetensors", offset=20)


def truncated_weights(ws: Workspace, run: str) -> None:
    path = ws.path(run) / "model" / "weights.safetensors"
    path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])


def missing_weights(ws: Workspace, run: str) -> None:
    (ws.path(run) / "model" / "weights.safetensors").unlink()


def empty_weights(ws: Workspace, run: str) -> None:
    (ws.path(run) / "model" / "weights.safetensors").write_bytes(b"")


def model_json_not_json(ws: Workspace, run: str) -> None:
    _model_json(ws, run).write_text("{")


def model_json_list(ws: Workspace, run: str) -> None:
    _model_json(ws, run).write_text("[]")


def model_json_missing(ws: Workspace, run: str) -> None:
    _model_json(ws, run).unlink()


def model_folder_missing(ws: Workspace, run: str) -> None:
    shutil.rmtree(ws.path(run) / "model")


def model_folder_is_a_file(ws: Workspace, run: str) -> None:
    shutil.rmtree(ws.path(run) / "model")
    (ws.path(run) / "model").write_text("not a folder")


def vocabulary_shrunk(ws: Workspace, run: str) -> None:
    def edit(m: dict) -> dict:
        m["items"]["tokens"] = m["items"]["tokens"][:5]
        m["items"]["size"] = 5
        return m

    edit_json(_model_json(ws, run), edit)


def vocabulary_size_lies(ws: Workspace, run: str) -> None:
    def edit(m: dict) -> dict:
        m["users"]["size"] = 10**9
        return m

    edit_json(_model_json(ws, run), edit)


def params_edited(ws: Workspace, run: str) -> None:
    def edit(m: dict) -> dict:
        m["params"]["l2"] = -1.0
        return m

    edit_json(_model_json(ws, run), edit)


def config_missing(ws: Workspace, run: str) -> None:
    (ws.path(run) / "config.yaml").unlink()


def only_config_left(ws: Workspace, run: str) -> None:
    """A run killed mid-fit: only config.yaml was written."""
    for child in ws.path(run).iterdir():
        if child.name != "config.yaml":
            shutil.rmtree(child) if child.is_dir() else child.unlink()


def config_not_yaml(ws: Workspace, run: str) -> None:
    (ws.path(run) / "config.yaml").write_text("model: [unclosed\n")


def config_points_at_raw(ws: Workspace, run: str) -> None:
    path = ws.path(run) / "config.yaml"
    path.write_text(path.read_text().replace("splits/synth", "raw/synth"))


DAMAGED_RUNS: dict[str, Callable[[Workspace, str], None]] = {
    "flipped byte in weights": flipped_weights,
    "flipped byte in the weights header": flipped_weights_header,
    "truncated weights": truncated_weights,
    "missing weights": missing_weights,
    "empty weights": empty_weights,
    "model.json not JSON": model_json_not_json,
    "model.json a list": model_json_list,
    "model.json missing": model_json_missing,
    "model folder missing": model_folder_missing,
    "model folder is a file": model_folder_is_a_file,
    "item vocabulary shrunk": vocabulary_shrunk,
    "user vocabulary size lies": vocabulary_size_lies,
    "params edited": params_edited,
    "config.yaml missing": config_missing,
    "only config.yaml (killed mid-fit)": only_config_left,
    "config.yaml not YAML": config_not_yaml,
    "config.yaml points at the raw folder": config_points_at_raw,
}


@pytest.mark.slice("B1")
@pytest.mark.parametrize("damage", cases(DAMAGED_RUNS, fast=6))
def test_recommend_refuses_a_damaged_run(ws: Workspace, damage: Callable[[Workspace, str], None]) -> None:
    run = ws.runs["ease"]
    damage(ws, run)
    ws.refused("recommend", run, "--out", "recs.parquet")


@pytest.mark.slice("B1")
@pytest.mark.parametrize("model", cases({m: m for m in ["item_knn", "popularity"]}, fast=1))
def test_recommend_refuses_flipped_weights_of_other_models(ws: Workspace, model: str) -> None:
    run = ws.runs[model]
    weights = sorted((ws.path(run) / "model").glob("*"))
    target = next((p for p in weights if p.name != "model.json"), weights[0])
    flip_byte(target)
    ws.refused("recommend", run, "--out", "recs.parquet")


BAD_RUN_PATHS = {
    "missing": "runs/ease/nosuch",
    "a file": f"{RAW}/events.csv",
    "the lake": LAKE,
    "the working directory": ".",
    "the runs root": "runs",
    "a model's runs folder": "runs/ease",
    "the model folder of a run": None,
}


@pytest.mark.slice("B1")
@pytest.mark.parametrize("target", cases(BAD_RUN_PATHS, fast=2))
def test_recommend_refuses_what_is_not_a_run(ws: Workspace, target: str | None) -> None:
    ws.refused("recommend", target or f"{ws.runs['ease']}/model", "--out", "recs.parquet")


# ---------------------------------------------------------------- --k and --out (slices E, A)


@pytest.mark.slice("E")
@pytest.mark.parametrize(
    "k", cases({k: k for k in ["-1", "0", "abc", "-1000000", "1.5", "99999999999999999999"]}, fast=3)
)
def test_recommend_refuses_bad_k(ws: Workspace, k: str) -> None:
    ws.refused("recommend", ws.runs["ease"], "--k", k, "--out", "recs.parquet")


@pytest.mark.slice("E")
def test_recommend_huge_k_is_capped_or_refused(ws: Workspace) -> None:
    """--k past the catalogue: refused, or at most the catalogue per user, quickly."""
    result = ws.handled("recommend", ws.runs["ease"], "--k", "1000000000", "--out", "recs.parquet")
    if result.returncode == 0:
        recs = pl.read_parquet(ws.path("recs.parquet"))
        assert (recs.group_by("user_id").len()["len"] <= 300).all()


BAD_OUTS = {
    "the raw events file": f"{RAW}/events.csv",
    "the lake manifest": f"{LAKE}/manifest.json",
    "the run's config": None,
    "a folder": "runs",
    "under a file": f"{RAW}/events.csv/recs.parquet",
    "a lake part file": "LAKEPART",
}


@pytest.mark.slice("A")
@pytest.mark.parametrize("out", cases(BAD_OUTS, fast=2))
def test_recommend_out_never_overwrites_what_is_not_ours(ws: Workspace, out: str | None) -> None:
    if out is None:
        out = f"{ws.runs['ease']}/config.yaml"
    elif out == "LAKEPART":
        out = sorted(ws.path(LAKE).glob("events/date=*/*.parquet"))[0].relative_to(ws.root).as_posix()
    ws.refused("recommend", ws.runs["ease"], "--out", out)


# ---------------------------------------------------------------- --users (slice C)


def _raw_user_ids(ws: Workspace, n: int = 20) -> list[str]:
    return sorted(s for s in ws.secrets if s.startswith("C0") and len(s) == 8)[:n]


def users_missing(ws: Workspace) -> str:
    return "nosuch-users.csv"


def users_empty(ws: Workspace) -> str:
    ws.path("users-in.csv").write_text("")
    return "users-in.csv"


def users_header_only(ws: Workspace) -> str:
    ws.path("users-in.csv").write_text("user_id\n")
    return "users-in.csv"


def users_no_user_id_column(ws: Workspace) -> str:
    ws.path("users-in.csv").write_text("customer\nabc\n")
    return "users-in.csv"


def users_a_folder(ws: Workspace) -> str:
    ws.path("users-in.csv").mkdir()
    return "users-in.csv"


def users_binary(ws: Workspace) -> str:
    ws.path("users-in.parquet").write_bytes(bytes(range(256)) * 10)
    return "users-in.parquet"


def users_csv_named_parquet(ws: Workspace) -> str:
    ws.path("users-in.parquet").write_text("user_id\nabc\n")
    return "users-in.parquet"


def users_list_typed(ws: Workspace) -> str:
    pl.DataFrame({"user_id": [["a"], ["b"]]}).write_parquet(ws.path("users-in.parquet"))
    return "users-in.parquet"


def users_struct_typed(ws: Workspace) -> str:
    pl.DataFrame({"user_id": [{"id": "a"}, {"id": "b"}]}).write_parquet(ws.path("users-in.parquet"))
    return "users-in.parquet"


def users_many_columns(ws: Workspace) -> str:
    header = "user_id," + ",".join(f"c{i}" for i in range(20000))
    ws.path("users-in.csv").write_text(header + "\nabc" + ",1" * 20000 + "\n")
    return "users-in.csv"


def users_only_nulls(ws: Workspace) -> str:
    ws.path("users-in.csv").write_text("user_id\n\n\n\n")
    return "users-in.csv"


def users_nobody_known(ws: Workspace) -> str:
    ws.path("users-in.csv").write_text("user_id\n" + "\n".join(f"stranger-{i}" for i in range(10)) + "\n")
    return "users-in.csv"


def users_unterminated_quote(ws: Workspace) -> str:
    raw = _raw_user_ids(ws, 3)
    ws.path("users-in.csv").write_text(f'user_id\n{raw[0]}\n"{raw[1]}\n{raw[2]}\n')
    return "users-in.csv"


BAD_USERS: dict[str, Callable[[Workspace], str]] = {
    "missing file": users_missing,
    "empty file": users_empty,
    "header only": users_header_only,
    "no user_id column": users_no_user_id_column,
    "a folder": users_a_folder,
    "binary bytes named .parquet": users_binary,
    "csv named .parquet": users_csv_named_parquet,
    "list-typed ids": users_list_typed,
    "struct-typed ids": users_struct_typed,
    "20000 columns": users_many_columns,
    "only empty ids": users_only_nulls,
    "ids that match nobody": users_nobody_known,
    "unterminated quote around a raw id": users_unterminated_quote,
}


@pytest.mark.slice("C")
@pytest.mark.parametrize("make", cases(BAD_USERS, fast=4))
def test_recommend_refuses_a_bad_users_file(ws: Workspace, make: Callable[[Workspace], str]) -> None:
    users = make(ws)
    ws.refused("recommend", ws.runs["ease"], "--users", users, "--out", "recs.parquet")


@pytest.mark.slice("C")
@pytest.mark.slow
def test_recommend_refuses_a_users_file_of_a_million_columns(ws: Workspace) -> None:
    header = "user_id," + ",".join(f"c{i}" for i in range(1_000_000))
    ws.path("users-in.csv").write_text(header + "\n")
    ws.refused("recommend", ws.runs["ease"], "--users", "users-in.csv", "--out", "recs.parquet")


@pytest.mark.slice("C")
def test_recommend_with_raw_ids_pseudonymises_or_refuses(ws: Workspace) -> None:
    """Raw ids must not silently become "unknown user, here is popularity"."""
    raw = _raw_user_ids(ws)
    ws.path("users-in.csv").write_text("user_id\n" + "\n".join(raw) + "\n")
    # Raw ids may come back in the --out file the caller asked for (outside the run), nowhere else.
    result = ws.handled(
        "recommend",
        ws.runs["ease"],
        "--users",
        "users-in.csv",
        "--out",
        "recs.parquet",
        may_hold_raw_ids=["recs.parquet"],
    )
    if result.returncode == 0:
        recs = pl.read_parquet(ws.path("recs.parquet"))
        distinct_lists = (
            recs.sort("rank")
            .group_by("user_id")
            .agg(pl.col("item_id"))
            .select(pl.col("item_id").list.join(","))
            .n_unique()
        )
        assert distinct_lists > 1, "every raw id was treated as an unknown user (one popularity list for all)"
        assert "unknown" in (result.stdout + result.stderr).lower(), "the number of unknown users is not reported"


@pytest.mark.slow
@pytest.mark.slice("C")
def test_recommend_with_unicode_and_odd_ids_is_clean(ws: Workspace) -> None:
    ids = ["🛒", "שלום", "a,b", '"quoted"', "x" * 5000, "nul\\x00"]
    pl.DataFrame({"user_id": ids}).write_parquet(ws.path("users-in.parquet"))
    ws.handled("recommend", ws.runs["ease"], "--users", "users-in.parquet", "--out", "recs.parquet")


@pytest.mark.slice("B1")
def test_recommend_positive_control(ws: Workspace) -> None:
    """The untouched run recommends, and writes only its output."""
    ws.succeeds("recommend", ws.runs["ease"], "--k", "5", "--out", "recs.parquet")
    assert pl.read_parquet(ws.path("recs.parquet")).height > 0
    assert json.loads(_model_json(ws, ws.runs["ease"]).read_text())["class"].startswith("recsys_cli.models.")


# ---------------------------------------------------------------- a run killed mid-fit (slice B1)


@pytest.mark.slice("B1")
def test_a_run_killed_mid_fit_is_never_taken_for_a_run(ws: Workspace) -> None:
    """kill -9 during `train`: what is left under runs/ is hidden, marked, or refused by every reader."""
    import signal
    import subprocess
    import sys
    import time

    from tests.adversarial.conftest import cli_env

    args = [
        "train",
        "model=bpr_mf",
        "trainer=smoke",
        "trainer.max_epochs=2000",
        "model.patience=2000",
        "runs_dir=runs-kill",
    ]
    proc = subprocess.Popen(
        [sys.executable, "-m", "recsys_cli", *args],
        cwd=ws.root,
        env=cli_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        if any(ws.path("runs-kill").rglob("config.yaml")):
            break
        time.sleep(0.1)
    time.sleep(1.0)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    visible = (
        [p for p in ws.path("runs-kill").glob("*/*") if p.is_dir() and not p.name.startswith(".")]
        if ws.path("runs-kill").exists()
        else []
    )
    for run in visible:  # `ls -d runs/bpr_mf/* | tail -1` would pick these
        ws.freeze()
        ws.refused("recommend", run.relative_to(ws.root), "--out", "recs.parquet")


@pytest.mark.slice("A")
def test_recommend_out_through_a_symlink_to_an_input_is_refused(ws: Workspace) -> None:
    """--out names a symlink to the raw events: writing through it would replace an input."""
    ws.path("recs-link.parquet").symlink_to(ws.path(RAW) / "events.csv")
    ws.refused("recommend", ws.runs["ease"], "--out", "recs-link.parquet")


@pytest.mark.slice("C")
def test_train_never_records_the_pii_key(ws: Workspace) -> None:
    """environment.json and config.yaml describe the run; the key in the environment is not part of it."""
    key = "k3Jx9-Qm2Lp8-Zr7Tv4-Wn6Yh1-Bc5Fd0-Ge2Ua9"
    ws.secrets = ws.secrets | {key}
    ws.succeeds("train", "model=popularity", "runs_dir=runs-fresh", env=ws.env(RECSYS_PII_KEY=key))


@pytest.mark.slice("none")
@pytest.mark.parametrize("how", cases({"--debug": "flag", "RECSYS_DEBUG=1": "env"}))
def test_debug_keeps_the_traceback(ws: Workspace, how: str) -> None:
    args = ["recommend", "runs/ease/nosuch", "--out", "recs.parquet"]
    result = ws.run("--debug", *args) if how == "flag" else ws.run(*args, env=ws.env(RECSYS_DEBUG="1"))
    assert result.returncode != 0 and "Traceback" in result.stderr, result.describe()
