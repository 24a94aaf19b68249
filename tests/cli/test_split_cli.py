"""recsys split end to end on a small synthetic shop."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from recsys_cli.cli import app
from recsys_cli.registry.integrity import seal

runner = CliRunner()


@pytest.mark.parametrize("split", ["global_temporal", "rolling_origin", "leave_last_n"])
def test_split_writes_manifest_and_targets(lake: Path, split: str) -> None:
    result = runner.invoke(app, ["split", f"paths.data_dir={lake}", f"split={split}"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    out = lake / "splits" / "synth" / f"{split}-engagement"
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["lake"]["manifest_sha256"] and manifest["target"]["positive_events"] == ["add_to_cart", "purchase"]
    folds = manifest["folds"]
    assert len(folds) == (4 if split == "rolling_origin" else 1)
    lake_rows = json.loads((lake / "lake" / "synth" / "manifest.json").read_text())["rows"]["events"]
    for fold in folds:
        test = pl.read_parquet(out / fold["name"] / "test_targets.parquet")
        assert test.height == fold["targets"]["test"]["pairs"] + fold["targets"]["test"]["cold_pairs"]
        assert fold["targets"]["test"]["evaluated_users"] > 0
        total = sum(p["rows"] for p in fold["parts"].values())
        assert total <= lake_rows and (split == "rolling_origin" or total == lake_rows)


def test_features_and_leakage_check(lake: Path) -> None:
    args = [f"paths.data_dir={lake}", "split=rolling_origin", "split.n_folds=2"]
    for command in (["split"], ["features"], ["check-leakage"]):
        result = runner.invoke(app, command + args, catch_exceptions=False)
        assert result.exit_code == 0, result.output
    assert "no leakage" in result.output
    out = lake / "features" / "synth" / "rolling_origin-engagement" / "default"
    manifest = json.loads((out / "manifest.json").read_text())
    assert [f["name"] for f in manifest["folds"]] == ["fold-0", "fold-1"]
    vocab = json.loads((out / "fold-1" / "test" / "vocab.json").read_text())
    assert vocab["item_id"]["tokens"][0] == "<oov>" and vocab["region"]["size"] > 1
    seq = pl.read_parquet(out / "fold-1" / "test" / "sequences.parquet")
    cutoff = manifest["folds"][1]["parts"]["test"]["cutoff"]
    assert str(seq.select(pl.col("ts").list.max().max()).item()) < cutoff.replace("T", " ")


def test_leave_last_n_is_reported_as_leaking(lake: Path) -> None:
    args = [f"paths.data_dir={lake}", "split=leave_last_n"]
    assert runner.invoke(app, ["split", *args]).exit_code == 0
    result = runner.invoke(app, ["check-leakage", *args])
    assert result.exit_code == 1 and "leaks global time by design" in result.output


@pytest.mark.parametrize(
    ("recorded", "message"),
    [
        (None, "made before ties in time were ordered by a hash"),
        ({"polars": "0.20.0"}, "made with Polars 0.20.0"),
        ({"seed": "7"}, "with another tie rule"),
    ],
)
def test_features_refuse_a_leave_last_n_split_whose_ties_were_ordered_otherwise(
    lake: Path, recorded: dict[str, str] | None, message: str
) -> None:
    """Features assign the held-out events again: under another tie order the
    split's targets and the training history would name different events."""
    args = [f"paths.data_dir={lake}", "split=leave_last_n"]
    assert runner.invoke(app, ["split", *args]).exit_code == 0
    path = lake / "splits" / "synth" / "leave_last_n-engagement" / "manifest.json"
    manifest = json.loads(path.read_text())
    if recorded is None:
        del manifest["event_order"]
    else:
        manifest["event_order"] |= recorded
    path.write_text(json.dumps(seal(manifest)))  # as that version would have written it, not an edit
    for command in ("features", "check-leakage"):
        result = runner.invoke(app, [command, *args])
        assert result.exit_code == 1 and message in result.output and "rerun `recsys split`" in result.output
    assert not (lake / "features" / "synth" / "leave_last_n-engagement").exists()


def test_time_splits_do_not_depend_on_the_tie_order(lake: Path) -> None:
    args = [f"paths.data_dir={lake}", "split=global_temporal"]
    assert runner.invoke(app, ["split", *args]).exit_code == 0
    path = lake / "splits" / "synth" / "global_temporal-engagement" / "manifest.json"
    manifest = json.loads(path.read_text())
    manifest["event_order"]["polars"] = "0.20.0"
    path.write_text(json.dumps(seal(manifest)))
    assert runner.invoke(app, ["features", *args]).exit_code == 0


def test_features_need_a_split(tmp_path: Path) -> None:
    result = runner.invoke(app, ["features", f"paths.data_dir={tmp_path}"])
    assert result.exit_code == 1 and "error:" in result.output
