"""How `recsys reproduce` configures the chain: every step reads and writes where
training expects, inside the work folder, with the experiment's data."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from hydra.utils import instantiate

from recsys_cli.config import DEFAULT_CONF_DIR, compose
from recsys_cli.errors import ConfigError, OutputError
from recsys_cli.experiments import DataSpec, Experiment, Tolerance
from recsys_cli.tasks.reproduce import (
    Chain,
    base_overrides,
    collect,
    compose_experiment,
    hydra_value,
    run,
    step_config,
)

PRESETS = sorted(p.stem for p in (DEFAULT_CONF_DIR / "experiment").glob("*.yaml"))


def experiment(preset: str = "synth_small", **data: object) -> Experiment:
    spec = DataSpec(**({"source": "synth"} | data))  # type: ignore[arg-type]
    return Experiment(
        Path("exp.yaml"), "exp", "", preset, spec, None, ("val", "test"), True, {"mean/val/x": Tolerance(1, abs=0)}
    )


@pytest.mark.parametrize("preset", PRESETS)
def test_every_preset_composes_with_train_and_builds_its_model(preset: str) -> None:
    cfg = compose("train", [f"experiment={preset}"])
    model = instantiate(cfg.model, _convert_="all")
    assert type(model).__name__ == cfg.model._target_.rsplit(".", 1)[-1]


def test_train_without_a_preset_keeps_its_defaults() -> None:
    assert compose("train", []).model._target_.endswith("Popularity")
    assert compose("train", ["experiment=synth_small"]).model._target_.endswith("EASE")


def test_the_chain_lives_in_the_work_folder_with_the_experiments_generator(tmp_path: Path) -> None:
    exp = experiment(generator={"seed": 7, "n_events": 6000, "start": "2026-02-01"})
    full = compose_experiment(exp, base_overrides(exp, tmp_path), DEFAULT_CONF_DIR)
    assert full.data.generator.seed == 7 and full.data.generator.start == "2026-02-01"  # still a string
    assert full.runs_dir == str(tmp_path / "runs")
    for step in ("ingest", "split", "features"):
        cfg = step_config(step, full, DEFAULT_CONF_DIR)
        assert cfg.lake_dir == full.lake_dir == str(tmp_path / "data" / "lake" / "synth")
        assert cfg.data.path == str(tmp_path / "data" / "raw" / "synth")
    assert step_config("features", full, DEFAULT_CONF_DIR).features_dir == full.features_dir
    assert step_config("split", full, DEFAULT_CONF_DIR).split_dir == full.split_dir
    ingest = step_config("ingest", full, DEFAULT_CONF_DIR)
    assert ingest.pii.key_env == "RECSYS_PII_KEY" and "max_bad_fraction" in ingest.validation  # ingest's own keys
    assert "model" not in step_config("split", full, DEFAULT_CONF_DIR)  # a split manifest records no model


def test_files_on_disk_are_ingested_from_the_experiments_folder(tmp_path: Path) -> None:
    exp = experiment("movielens100k_ranker_lgbm", source="movielens100k", raw=Path("some/where"))
    full = compose_experiment(exp, base_overrides(exp, tmp_path), DEFAULT_CONF_DIR)
    assert step_config("ingest", full, DEFAULT_CONF_DIR).data.path == str(Path("some/where").resolve())
    assert full.split.n_folds == 4 and full.features.ranker_windows == 12 and full.model.backend == "lightgbm"


def test_a_preset_that_does_not_exist_or_ingests_other_data_is_named(tmp_path: Path) -> None:
    missing = experiment("nope")
    with pytest.raises(ConfigError, match=r"exp.yaml: preset: no .*experiment/nope.yaml"):
        compose_experiment(missing, base_overrides(missing, tmp_path), DEFAULT_CONF_DIR)
    other = experiment("synth_small", source="movielens100k")
    with pytest.raises(ConfigError, match="exp.yaml: data.source: 'movielens100k', but preset synth_small ingests"):
        compose_experiment(other, base_overrides(other, tmp_path), DEFAULT_CONF_DIR)
    unknown = experiment(generator={"colour": "red"})
    with pytest.raises(ConfigError, match="exp.yaml: preset synth_small with this file's data: .*colour"):
        compose_experiment(unknown, base_overrides(unknown, tmp_path), DEFAULT_CONF_DIR)


@pytest.mark.parametrize("value", ["2026-01-01", "null", "it's", "back\\slash", "end\\", "a\\'b", 3, 0.25, 1e-05, True])
def test_override_values_read_back_unchanged(value: object) -> None:
    # Hydra's own parser: composing would also validate the key's type and range.
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parsed = OverridesParser.create().parse_override(f"data.generator.start={hydra_value(value)}")  # type: ignore[arg-type]
    assert parsed.value() == value and type(parsed.value()) is type(value)


def test_collect_names_each_runs_metrics_and_averages_the_folds() -> None:
    runs = {
        "fold-0/val": {"metrics": {"ndcg@10": 0.2, "users": 10.0, "best_epoch": 3.0}},
        "fold-0/test": {"metrics": {"ndcg@10": 0.1}},
        "fold-1/val": {"metrics": {"ndcg@10": 0.4, "users": 30.0}},
        "fold-1/test": {"metrics": {"ndcg@10": 0.3}},
    }
    measured = collect(runs)
    assert measured["fold-0/val/best_epoch"] == 3.0 and measured["fold-1/test/ndcg@10"] == 0.3
    assert measured["mean/val/ndcg@10"] == pytest.approx(0.3)  # each fold counts once
    assert measured["mean/val/users"] == 20.0 and measured["mean/test/ndcg@10"] == pytest.approx(0.2)
    assert "mean/val/best_epoch" not in measured  # not every fold reports it


def test_the_current_folder_is_refused_as_work_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # its data/ and runs/ are the user's own
    with pytest.raises(ConfigError, match="--workdir .: the chain writes data/ and runs/ inside it"):
        Chain(experiment(), Path("."))
    assert not any(tmp_path.iterdir())


def test_a_work_folder_that_is_not_a_reproductions_is_refused(tmp_path: Path) -> None:
    (tmp_path / "data" / "lake").mkdir(parents=True)  # a user's own working folder
    with pytest.raises(OutputError, match="not a reproduction written by recsys: no manifest.json"):
        Chain(experiment(), tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == ["data"]


def test_the_verdict_never_overwrites_the_experiment_file(tmp_path: Path) -> None:
    spec = tmp_path / "exp.yaml"
    spec.write_text("name: exp\n")
    chain = Chain(replace(experiment(), path=spec), tmp_path / "work")
    with pytest.raises(OutputError, match="refusing to write a reproduction over the input"):
        run(chain, out=spec)
    assert spec.read_text() == "name: exp\n" and not (tmp_path / "work").exists()
