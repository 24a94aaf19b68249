"""Search spaces declared in YAML: what they accept, what they refuse, and the
overrides a trial's values become."""

from __future__ import annotations

from typing import Any

import optuna
import pytest
from hydra.core.override_parser.overrides_parser import OverridesParser

from recsys_cli.errors import ConfigError
from recsys_cli.sweep.search_space import SearchSpace, to_override

SPACE: dict[str, Any] = {
    "model": {
        "lr": {"type": "float", "low": 1e-4, "high": 1e-1, "log": True},
        "layers": {"type": "int", "low": 1, "high": 3},
        "dropout": {"type": "float", "low": 0.0, "high": 0.3, "step": 0.1},
        "hard_negatives": {"type": "categorical", "choices": [0, 8]},
        "hard_pool": {"type": "int", "low": 64, "high": 256, "log": True, "when": {"model.hard_negatives": [8]}},
    }
}


def test_parameters_are_named_by_their_config_path_in_declaration_order() -> None:
    space = SearchSpace.from_config(SPACE)
    assert space.names == ["model.lr", "model.layers", "model.dropout", "model.hard_negatives", "model.hard_pool"]


def test_a_conditional_parameter_is_suggested_only_when_its_condition_holds() -> None:
    space = SearchSpace.from_config(SPACE)
    base = {"model.lr": 0.01, "model.layers": 2, "model.dropout": 0.1}
    off = space.suggest(optuna.trial.FixedTrial({**base, "model.hard_negatives": 0}))
    on = space.suggest(optuna.trial.FixedTrial({**base, "model.hard_negatives": 8, "model.hard_pool": 128}))
    assert "model.hard_pool" not in off
    assert on["model.hard_pool"] == 128


def test_a_sampler_sees_the_declared_distributions() -> None:
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    space = SearchSpace.from_config(SPACE)
    for _ in range(20):
        trial = study.ask()
        values = space.suggest(trial)
        study.tell(trial, 0.0)
        assert 1e-4 <= values["model.lr"] <= 1e-1 and values["model.layers"] in (1, 2, 3)
        assert round(values["model.dropout"], 6) in (0.0, 0.1, 0.2, 0.3)
    dist = study.trials[0].distributions["model.lr"]
    assert isinstance(dist, optuna.distributions.FloatDistribution) and dist.log


def test_grid_values_come_from_choices_ranges_steps_or_an_explicit_grid() -> None:
    grid = SearchSpace.from_config(
        {
            "a": {"type": "categorical", "choices": ["x", "y"]},
            "b": {"type": "int", "low": 1, "high": 3},
            "c": {"type": "float", "low": 0.0, "high": 0.2, "step": 0.1},
            "d": {"type": "float", "low": 1e-3, "high": 1e-1, "log": True, "grid": [1e-3, 1e-2]},
        }
    ).grid()
    assert grid == {"a": ["x", "y"], "b": [1, 2, 3], "c": [0.0, 0.1, 0.2], "d": [1e-3, 1e-2]}


def test_a_continuous_parameter_without_grid_values_cannot_be_walked_by_the_grid_sampler() -> None:
    space = SearchSpace.from_config({"lr": {"type": "float", "low": 1e-4, "high": 1e-1, "log": True}})
    with pytest.raises(ConfigError, match="lr: the grid sampler needs"):
        space.grid()


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"type": "uniform", "low": 0, "high": 1}, "type must be one of"),
        ({"type": "float", "low": 1}, "needs `low` and `high`"),
        ({"type": "float", "low": 1, "high": 0}, "low 1 is above high 0"),
        ({"type": "float", "low": 0, "high": 1, "log": True}, "log scale needs low > 0"),
        ({"type": "int", "low": 0.5, "high": 2}, "whole low and high"),
        ({"type": "categorical", "choices": []}, "needs `choices`"),
        ({"type": "categorical", "choices": [[1, 2]]}, "numbers, strings, booleans or null"),
        ({"type": "float", "low": 0, "high": 1, "choices": [1]}, "unknown field"),
        ({"type": "int", "low": 1, "high": 4, "when": {"model.later": [1]}}, "not a parameter declared before"),
    ],
)
def test_a_malformed_parameter_is_refused_naming_it(spec: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message) as info:
        SearchSpace.from_config({"model": {"x": spec, "later": {"type": "int", "low": 1, "high": 2}}})
    assert "model.x" in str(info.value)


def test_an_empty_space_is_refused() -> None:
    with pytest.raises(ConfigError, match="no parameter"):
        SearchSpace.from_config({})


def test_enqueued_trials_are_flattened_and_checked_against_the_space() -> None:
    space = SearchSpace.from_config(SPACE)
    assert space.check_enqueued([{"model": {"lr": 0.01}}, {"model.layers": 2}]) == [
        {"model.lr": 0.01},
        {"model.layers": 2},
    ]
    with pytest.raises(ConfigError, match=r"enqueue\[0\]: model.lr=1.0 is outside"):
        space.check_enqueued([{"model.lr": 1.0}])
    with pytest.raises(ConfigError, match="model.dim is not a searched parameter"):
        space.check_enqueued([{"model.dim": 64}])


@pytest.mark.parametrize("value", [0.003, 1e-05, 7, True, None, "adam", "1e-3", "null", "it's"])
def test_an_override_parses_back_to_the_same_value(value: Any) -> None:
    (parsed,) = OverridesParser.create().parse_overrides([to_override("model.x", value)])
    assert parsed.key_or_group == "model.x"
    assert parsed.value() == value and type(parsed.value()) is type(value)


def test_probes_cover_both_ends_of_each_range_and_every_choice() -> None:
    space = SearchSpace.from_config(
        {
            "model": {
                "lr": {"type": "float", "low": 0.1, "high": 1.0},
                "dim": {"type": "categorical", "choices": [8, 16]},
            }
        }
    )
    assert space.probes() == [
        {"model.lr": 0.1, "model.dim": 8},
        {"model.lr": 1.0, "model.dim": 8},
        {"model.lr": 0.1, "model.dim": 16},
    ]
