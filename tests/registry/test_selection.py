"""What a validation run chose is found again by the matching refit, and only by it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from omegaconf import DictConfig, OmegaConf

from recsys_cli.errors import ConfigError
from recsys_cli.registry import lineage, selection
from recsys_cli.registry.integrity import MANIFEST, sha256_file
from recsys_cli.registry.run_dir import find_run, new_run, open_run, publish_run
from recsys_cli.registry.selection import Selection


class Neural:
    """Early-stops on the validation window through the Lightning loop."""

    chooses_on_validation = True
    best_epoch = 7
    selected: dict[str, Any] = {}

    def lightning_trainer(self) -> dict[str, Any] | None:
        return {"max_epochs": 30}


class Ranker(Neural):
    """Stops on held-out users of its own: its best epoch is no refit setting."""

    chooses_on_validation = False


class Gridded:
    """A closed-form model with an on-validation grid."""

    chooses_on_validation = True
    grid = {"l2": [1.0, 10.0]}
    selected = {"l2": 10.0}
    best_epoch = None

    def lightning_trainer(self) -> dict[str, Any] | None:
        return None


@pytest.fixture
def cfg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> DictConfig:
    monkeypatch.chdir(tmp_path)
    for name in ("lake", "split", "features"):
        (tmp_path / "data" / name).mkdir(parents=True)
        (tmp_path / "data" / name / MANIFEST).write_text(json.dumps({"name": name}))
    trainer = {"max_epochs": 30, "enable_progress_bar": True, "accelerator": "cpu"}
    plain = {
        "lake_dir": "data/lake",
        "split_dir": "data/split",
        "features_dir": "data/features",
        "runs_dir": str(tmp_path / "runs"),
        "fold": "fold-0",
        "part": "val",
        "refit_from": "auto",
        "seed": 42,
        "trainer": trainer,
        "model": {"_target_": "recsys_cli.models.bpr_mf.BPRMF", "dim": 8, "l2": 1.0, "trainer": trainer},
        "eval": {"ks": [10]},
    }
    return lineage.pinned(OmegaConf.create(plain))


def val_run(cfg: DictConfig, chosen: Selection, **changes: Any) -> Path:
    """A sealed part=val run of `cfg` (with dotted `changes`) that chose `chosen`."""
    cfg = cfg.copy()
    for key, value in changes.items():
        OmegaConf.update(cfg, key.replace("__", "."), value)
    folder = new_run(cfg.runs_dir, "bprmf", cfg)
    (folder / "metrics.json").write_text("{}")
    selection.write(folder, chosen)
    return publish_run(folder, lineage.record(cfg))


def test_the_refit_finds_the_newest_matching_validation_run(cfg: DictConfig) -> None:
    val_run(cfg, Selection(3))
    newest = val_run(cfg, Selection(5))
    val_run(cfg, Selection(9), part="test")  # a refit is never a source
    test = cfg.copy()
    test.part, test.trainer.max_epochs, test.model.trainer.max_epochs = "test", 2, 2
    test.trainer.enable_progress_bar = False  # nothing fitted depends on it
    found = selection.find_source(test, "bprmf")
    assert found is not None and found.path == newest
    chosen = selection.read(found, Neural())
    assert chosen.best_epoch == 5
    assert chosen.source == {"run": str(newest.resolve()), "manifest_sha256": sha256_file(newest / MANIFEST)}


@pytest.mark.parametrize(
    "change", [{"seed": 7}, {"model__dim": 16}, {"fold": "fold-1"}, {"features_dir": "/elsewhere"}]
)
def test_a_validation_run_of_other_settings_or_data_never_matches(cfg: DictConfig, change: dict[str, Any]) -> None:
    val_run(cfg, Selection(5), **change)
    test = cfg.copy()
    test.part = "test"
    assert selection.find_source(test, "bprmf") is None
    key = next(iter(change)).replace("__", ".")
    assert selection.nearest_difference(test, "bprmf") == key


def test_the_keys_a_selection_pins_may_differ(cfg: DictConfig) -> None:
    """A refit composed with l2=1.0 matches the run that chose l2=10.0 on validation
    (and configured something else), and pins what it chose."""
    run = val_run(cfg, Selection(None, {"l2": 10.0}), model__l2=3.0)
    test = cfg.copy()
    test.part = "test"
    found = selection.find_source(test, "bprmf")
    assert found is not None and found.path == run
    pinned = selection.apply(test, selection.read(found, Gridded()))
    assert pinned.model.l2 == 10.0 and pinned.trainer.max_epochs == 30


def test_the_epochs_are_pinned_only_for_models_that_stop_on_the_validation_window(cfg: DictConfig) -> None:
    run = open_run(val_run(cfg, Selection(5)))
    assert selection.read(run, Neural()).best_epoch == 5
    assert selection.read(run, Ranker()).best_epoch is None
    pinned = selection.apply(cfg, selection.read(run, Neural()))
    assert pinned.trainer.max_epochs == 5 and pinned.model.trainer.max_epochs == 5


def test_what_a_fit_chose(cfg: DictConfig) -> None:
    assert selection.chosen(Neural()) == Selection(7, {})
    assert selection.chosen(Ranker()) == Selection(None, {})
    assert selection.chosen(Gridded()) == Selection(None, {"l2": 10.0})
    assert [selection.chooses_on_validation(m) for m in (Neural(), Ranker(), Gridded())] == [True, False, True]


def test_the_models_say_whether_they_choose_on_validation() -> None:
    """A closed-form model does exactly when its grid is set; a neural one always
    (early stopping); the ranker never (it stops on held-out users of its own)."""
    from recsys_cli.models.bpr_mf import BPRMF
    from recsys_cli.models.ease import EASE
    from recsys_cli.models.popularity import Popularity

    assert EASE(grid={"l2": [1.0, 10.0]}).chooses_on_validation
    assert not EASE().chooses_on_validation
    assert BPRMF().chooses_on_validation
    assert not Popularity().chooses_on_validation


def test_a_named_source_must_be_a_validation_run_of_the_same_config(cfg: DictConfig) -> None:
    other = val_run(cfg, Selection(5), seed=1)
    test = cfg.copy()
    test.part = "test"
    with pytest.raises(ConfigError, match="its seed differs"):
        selection.named_source(test, other, "bprmf")
    refit = val_run(cfg, Selection(5), part="test")
    with pytest.raises(ConfigError, match="not a part=val run"):
        selection.named_source(test, refit, "bprmf")
    assert selection.named_source(test, val_run(cfg, Selection(5)), "bprmf").config.part == "val"


def test_unfinished_and_unsealed_runs_are_never_candidates(cfg: DictConfig, tmp_path: Path) -> None:
    new_run(cfg.runs_dir, "bprmf", cfg)  # staged, hidden
    loose = tmp_path / "runs" / "bprmf" / "99991231T000000000000Z"
    loose.mkdir()
    OmegaConf.save(cfg, loose / "config.yaml")  # no manifest
    assert find_run(cfg.runs_dir, "bprmf", lambda *_: True) is None
    assert find_run(cfg.runs_dir, "nothing", lambda *_: True) is None
