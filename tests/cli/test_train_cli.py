"""recsys train and recsys recommend end to end."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from recsys_cli.cli import app
from recsys_cli.config import DEFAULT_CONF_DIR

runner = CliRunner()


def test_train_writes_a_reproducible_run_and_recommend_uses_it(prepared: Path, tmp_path: Path) -> None:
    args = [f"paths.data_dir={prepared}", f"runs_dir={tmp_path / 'runs'}", "model=item_knn"]
    result = runner.invoke(app, ["train", *args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    (run,) = (tmp_path / "runs" / "itemknn").iterdir()
    metrics = json.loads((run / "metrics.json").read_text())
    assert 0 < metrics["val/ndcg@10"] <= 1 and metrics["val/users"] > 0
    assert "model=item_knn" not in (run / "config.yaml").read_text()  # resolved values, not overrides
    assert "ItemKNN" in (run / "config.yaml").read_text()
    env = json.loads((run / "environment.json").read_text())
    assert env["versions"]["polars"] == pl.__version__ and env["cpu_count"] > 0 and env["code"]["recsys"]
    assert "trainer" not in env  # no Lightning loop in an item-kNN fit

    rec = runner.invoke(app, ["recommend", str(run), "--k", "5"], catch_exceptions=False)
    assert rec.exit_code == 0, rec.output
    recs = pl.read_parquet(run / "recommendations.parquet")
    assert recs.columns == ["user_id", "item_id", "rank", "score"]
    assert recs.group_by("user_id").len()["len"].unique().to_list() == [5]
    assert recs["user_id"].n_unique() == metrics["val/users"]

    users = tmp_path / "users.csv"
    users.write_text("user_id\n" + recs["user_id"][0] + "\nsomeone-new\n")
    rec = runner.invoke(app, ["recommend", str(run), "--users", str(users), "--out", str(tmp_path / "r.parquet")])
    assert rec.exit_code == 0, rec.output
    assert pl.read_parquet(tmp_path / "r.parquet")["user_id"].n_unique() == 2  # the new user gets popularity


def test_recommend_never_pads_with_excluded_items(prepared: Path, tmp_path: Path) -> None:
    """Asked for more items than a user has left unseen, recommend writes fewer
    rows, not seen items or the unknown-item placeholder at score -inf."""
    args = [f"paths.data_dir={prepared}", f"runs_dir={tmp_path / 'runs'}", "model=popularity"]
    assert runner.invoke(app, ["train", *args]).exit_code == 0
    (run,) = (tmp_path / "runs" / "popularity").iterdir()
    rec = runner.invoke(app, ["recommend", str(run), "--k", "100000", "--out", str(tmp_path / "all.parquet")])
    assert rec.exit_code == 0, rec.output
    recs = pl.read_parquet(tmp_path / "all.parquet")
    vocab = json.loads((run / "model" / "model.json").read_text())["items"]
    catalogue = len(vocab["tokens"]) - 1
    assert recs["score"].is_finite().all() and "<oov>" not in recs["item_id"].to_list()
    per_user = recs.group_by("user_id").agg(pl.len(), pl.col("rank").max().alias("last"))
    assert (per_user["len"] == per_user["last"]).all()
    # Each user loses exactly the items the target counts as seen (carted or bought).
    features = prepared / "features" / "synth" / "global_temporal-engagement" / "default" / "fold-0" / "val"
    seen = pl.read_parquet(features / "interactions.parquet").filter("seen").group_by("user_id").agg(n_seen=pl.len())
    per_user = per_user.join(seen, on="user_id", how="left").with_columns(pl.col("n_seen").fill_null(0))
    assert (per_user["len"] == catalogue - per_user["n_seen"]).all() and (per_user["n_seen"] > 0).any()
    seen = runner.invoke(
        app, ["recommend", str(run), "--k", "100000", "--include-seen", "--out", str(tmp_path / "s.parquet")]
    )
    assert pl.read_parquet(tmp_path / "s.parquet").group_by("user_id").len()["len"].unique().to_list() == [catalogue]
    assert seen.exit_code == 0


def test_recommend_never_writes_over_its_users_file_or_a_foreign_file(prepared: Path, tmp_path: Path) -> None:
    args = [f"paths.data_dir={prepared}", f"runs_dir={tmp_path / 'runs'}", "model=popularity"]
    assert runner.invoke(app, ["train", *args], catch_exceptions=False).exit_code == 0
    (run,) = (tmp_path / "runs").glob("*/*")
    users = tmp_path / "users.csv"
    users.write_text("user_id\nsomeone\n")
    notes = tmp_path / "notes.parquet"
    pl.DataFrame({"user_id": ["x"]}).write_parquet(notes)
    for out, message in ((users, "over the input"), (notes, "not a recommendations written by recsys")):
        before = out.read_bytes()
        result = runner.invoke(app, ["recommend", str(run), "--users", str(users), "--out", str(out)])
        assert result.exit_code == 1 and message in result.output, result.output
        assert out.read_bytes() == before
    mine = tmp_path / "recs.parquet"
    for _ in range(2):  # its own earlier output is replaced
        result = runner.invoke(app, ["recommend", str(run), "--k", "3", "--out", str(mine)])
        assert result.exit_code == 0, result.output


def test_a_neural_run_records_the_device_and_precision_it_resolved(prepared: Path, tmp_path: Path) -> None:
    import torch

    args = [f"paths.data_dir={prepared}", f"runs_dir={tmp_path / 'runs'}", "model=bpr_mf", "trainer.max_epochs=1"]
    result = runner.invoke(app, ["train", *args, "trainer.enable_progress_bar=false"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    (run,) = (tmp_path / "runs" / "bprmf").iterdir()
    env = json.loads((run / "environment.json").read_text())
    assert "precision: auto" in (run / "config.yaml").read_text()
    if not torch.cuda.is_available() and not torch.backends.mps.is_available():
        assert env["trainer"] == {"accelerator": "cpu", "precision": "32-true"} and env["cuda"] is None
    assert env["torch_threads"] == torch.get_num_threads() and env["versions"]["torch"] == torch.__version__


def test_train_without_features_is_a_clear_error(tmp_path: Path) -> None:
    result = runner.invoke(app, ["train", f"paths.data_dir={tmp_path}"])
    assert result.exit_code == 1 and "no features here" in result.output


def test_a_bad_model_setting_is_one_line_naming_it(prepared: Path, tmp_path: Path) -> None:
    args = [f"paths.data_dir={prepared}", f"runs_dir={tmp_path / 'runs'}", "model=sasrec", "model.train_stride=0"]
    result = runner.invoke(app, ["train", *args])
    assert result.exit_code == 1 and "model.train_stride = 0: must be >= 1" in result.output
    assert "Traceback" not in result.output and "instantiat" not in result.output.lower()
    assert not (tmp_path / "runs").exists()  # nothing half-written


def test_epoch_counts_given_as_floats_are_whole_numbers(prepared: Path, tmp_path: Path) -> None:
    args = [f"paths.data_dir={prepared}", f"runs_dir={tmp_path / 'runs'}", "model=bpr_mf", "trainer=smoke"]
    result = runner.invoke(app, ["train", *args, "trainer.max_epochs=2.0"])
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["train", *args, "trainer.max_epochs=2.5"])
    assert result.exit_code == 1 and "'train': trainer.max_epochs = 2.5: must be a whole number\n" in result.output


def test_test_part_refits_on_train_and_validation(prepared: Path, tmp_path: Path) -> None:
    args = [f"paths.data_dir={prepared}", f"runs_dir={tmp_path / 'runs'}", "model=bpr_mf", "trainer=smoke"]
    assert runner.invoke(app, ["train", *args], catch_exceptions=False).exit_code == 0
    (val_run,) = (tmp_path / "runs" / "bprmf").iterdir()
    best = json.loads((val_run / "metrics.json").read_text())["best_epoch"]
    result = runner.invoke(
        app, ["train", *args, "part=test", f"trainer.max_epochs={int(best)}"], catch_exceptions=False
    )
    assert result.exit_code == 0, result.output
    test_run = max((tmp_path / "runs" / "bprmf").iterdir())
    metrics = json.loads((test_run / "metrics.json").read_text())
    assert "test/ndcg@10" in metrics and "val/ndcg@10" not in metrics and "best_epoch" not in metrics


def test_train_writes_per_user_metrics_whose_means_are_the_run_metrics(prepared: Path, tmp_path: Path) -> None:
    args = [f"paths.data_dir={prepared}", f"runs_dir={tmp_path / 'runs'}", "model=item_knn", "eval.ks=[5,10]"]
    assert runner.invoke(app, ["train", *args], catch_exceptions=False).exit_code == 0
    (run,) = (tmp_path / "runs" / "itemknn").iterdir()
    metrics = json.loads((run / "metrics.json").read_text())
    per_user = pl.read_parquet(run / "per_user.parquet")
    targets = pl.read_parquet(
        prepared / "splits" / "synth" / "global_temporal-engagement" / "fold-0" / "val_targets.parquet"
    )
    evaluated = targets.filter(~pl.col("cold"))["user_id"].unique().sort()
    assert per_user.height == metrics["val/users"] == evaluated.len()
    assert per_user["user_id"].to_list() == evaluated.to_list()  # original ids, one row each
    for k in (5, 10):
        for name in ("ndcg", "recall", "hitrate", "mrr"):
            assert per_user[f"{name}@{k}"].mean() == pytest.approx(metrics[f"val/{name}@{k}"], abs=1e-9)


def test_help_names_every_model_in_the_config_folder() -> None:
    result = runner.invoke(app, ["train", "--help"])
    assert result.exit_code == 0
    listed = "".join(result.output.split("model=")[1].split(";")[0].split()).split("|")  # rich wraps long lines
    assert listed == sorted(p.stem for p in (Path(DEFAULT_CONF_DIR) / "model").glob("*.yaml"))
    assert {"sasrec", "two_tower", "ranker_lgbm", "als"} <= set(listed)
