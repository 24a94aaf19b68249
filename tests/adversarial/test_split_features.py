"""`recsys split`, `recsys features` and `recsys check-leakage`: output folders, configs, damaged inputs."""

from __future__ import annotations

import json

import pytest

from tests.adversarial.conftest import FEATURES, LAKE, RAW, SPLIT, Workspace, cases, flip_byte

# ---------------------------------------------------------------- output folders (slice A)

BAD_SPLIT_DIRS = {
    "the raw folder": RAW,
    "the data folder": "data",
    "the lake": LAKE,
    "the working directory": ".",
    "the runs folder": "runs",
    "the features folder": FEATURES,
    "an existing file": f"{RAW}/events.csv",
    "a folder inside the lake": f"{LAKE}/splits",
}


@pytest.mark.slice("A")
@pytest.mark.parametrize("target", cases(BAD_SPLIT_DIRS, fast=3))
def test_split_dir_that_is_not_a_split_is_refused(ws: Workspace, target: str) -> None:
    ws.refused("split", f"split_dir={target}")


@pytest.mark.slow
@pytest.mark.slice("A")
def test_split_dir_that_is_a_run_is_refused(ws: Workspace) -> None:
    ws.refused("split", f"split_dir={ws.runs['popularity']}")


BAD_FEATURES_DIRS = {
    "the raw folder": RAW,
    "the lake": LAKE,
    "the split it reads": SPLIT,
    "the working directory": ".",
    "the data folder": "data",
    "an existing file": f"{RAW}/users.csv",
}


@pytest.mark.slice("A")
@pytest.mark.parametrize("target", cases(BAD_FEATURES_DIRS, fast=2))
def test_features_dir_that_is_not_features_is_refused(ws: Workspace, target: str) -> None:
    ws.refused("features", f"features_dir={target}")


@pytest.mark.slice("A")
def test_split_rerun_over_its_own_output_is_allowed(ws: Workspace) -> None:
    """The positive control: a split folder may be replaced by the same command."""
    ws.succeeds("split", may_change=[SPLIT])


# ---------------------------------------------------------------- configuration (slice E)

BAD_SPLIT_CONFIG = {
    "zero folds": ("split=rolling_origin", "split.n_folds=0"),
    "negative folds": ("split=rolling_origin", "split.n_folds=-2"),
    "zero test days": ("split=rolling_origin", "split.test_days=0"),
    "negative val days": ("split=rolling_origin", "split.val_days=-7"),
    "folds not a number": ("split=rolling_origin", "split.n_folds=many"),
    "val fraction above one": ("split.val_fraction=1.5",),
    "negative test fraction": ("split.test_fraction=-0.1",),
    "fractions sum to one": ("split.val_fraction=0.5", "split.test_fraction=0.5"),
    "cutoff not a date": ("split.test_cutoff=someday",),
    "cutoffs out of order": ("split.val_cutoff=2026-02-05", "split.test_cutoff=2026-01-10"),
    "cutoff after the data": ("split.val_cutoff=2031-01-01", "split.test_cutoff=2031-02-01"),
    "unknown protocol": ("split=nosuch",),
    "unknown target": ("target=nosuch",),
    "leave_last_n of zero": ("split=leave_last_n", "split.n=0"),
}


@pytest.mark.slice("E")
@pytest.mark.parametrize("overrides", cases(BAD_SPLIT_CONFIG, fast=3))
def test_invalid_split_config_is_refused(ws: Workspace, overrides: tuple[str, ...]) -> None:
    ws.refused("split", *overrides, "split_dir=data/splits/synth/fresh")


BAD_FEATURES_CONFIG = {
    "negative half-life": ("features.half_life_days=-1",),
    "zero half-life": ("features.half_life_days=0",),
    "zero max_len": ("features.max_len=0",),
    "negative max_len": ("features.max_len=-5",),
    "empty windows": ("features.windows_days=[]",),
    "negative window": ("features.windows_days=[-7]",),
    "zero vocab min count": ("features.vocab_min_count=0",),
    "unknown dedup": ("features.dedup=median_of_means",),
    "weight not a number": ("features.weights.view=lots",),
    "negative ranker windows": ("features.ranker_windows=-1",),
    "unknown feature set": ("features=nosuch",),
}


@pytest.mark.slice("E")
@pytest.mark.parametrize("overrides", cases(BAD_FEATURES_CONFIG, fast=2))
def test_invalid_features_config_is_refused(ws: Workspace, overrides: tuple[str, ...]) -> None:
    ws.refused("features", *overrides, "features_dir=data/features/synth/fresh")


# ---------------------------------------------------------------- damaged or missing inputs


@pytest.mark.slice("B2")
def test_features_refuses_a_missing_split(ws: Workspace) -> None:
    ws.refused("features", "split_dir=data/splits/synth/nosuch", "features_dir=data/features/synth/fresh")


@pytest.mark.slice("B2")
def test_features_refuses_a_flipped_byte_in_split_targets(ws: Workspace) -> None:
    flip_byte(ws.path(SPLIT) / "fold-0" / "val_targets.parquet")
    ws.refused("features", "features_dir=data/features/synth/fresh")


@pytest.mark.slow
@pytest.mark.slice("B2")
def test_features_refuses_a_split_manifest_that_is_a_list(ws: Workspace) -> None:
    (ws.path(SPLIT) / "manifest.json").write_text(json.dumps(["fold-0"]))
    ws.refused("features", "features_dir=data/features/synth/fresh")


@pytest.mark.slow
@pytest.mark.slice("B2")
def test_features_refuses_a_split_of_another_lake(ws: Workspace) -> None:
    """The split was cut from a lake that has changed since (re-ingested with fewer days)."""
    manifest = ws.path(SPLIT) / "manifest.json"
    obj = json.loads(manifest.read_text())
    obj["lake"] = (
        {"path": "data/lake/other", "fingerprint": "0" * 64} if isinstance(obj.get("lake"), dict) else "0" * 64
    )
    manifest.write_text(json.dumps(obj))
    ws.refused("features", "features_dir=data/features/synth/fresh")


@pytest.mark.slice("B2")
@pytest.mark.parametrize(
    "name", cases({n: n for n in ["interactions.parquet", "vocab.json", "sequences.parquet"]}, fast=1)
)
def test_train_refuses_damaged_features(ws: Workspace, name: str) -> None:
    flip_byte(ws.path(FEATURES) / "fold-0" / "val" / name)
    ws.refused("train", "model=ease", "runs_dir=runs-fresh")


@pytest.mark.slice("B2")
def test_train_refuses_missing_features(ws: Workspace) -> None:
    ws.refused("train", "model=popularity", "features_dir=data/features/synth/nosuch", "runs_dir=runs-fresh")


@pytest.mark.slow
@pytest.mark.slice("B2")
def test_check_leakage_refuses_a_missing_split(ws: Workspace) -> None:
    ws.refused("check-leakage", "split_dir=data/splits/synth/nosuch")


@pytest.mark.slow
@pytest.mark.slice("B2")
def test_split_refuses_a_missing_lake(ws: Workspace) -> None:
    ws.refused("split", "lake_dir=data/lake/nosuch", "split_dir=data/splits/synth/fresh")


@pytest.mark.slow
@pytest.mark.slice("B2")
def test_split_refuses_a_raw_folder_as_lake(ws: Workspace) -> None:
    ws.refused("split", f"lake_dir={RAW}", "split_dir=data/splits/synth/fresh")
