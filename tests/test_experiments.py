"""Experiment files: how a measurement is judged against its tolerance, and how a
malformed file is refused (one line naming the file and the field)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from recsys_cli.config import DEFAULT_CONF_DIR
from recsys_cli.errors import ConfigError
from recsys_cli.experiments import Tolerance, check, check_all, load_experiment

EXPERIMENTS = sorted((DEFAULT_CONF_DIR.parent / "experiments").glob("*.yaml"))


# --------------------------------------------------------------------------- tolerances


@pytest.mark.parametrize(
    ("tolerance", "measured", "status"),
    [
        (Tolerance(0.5, abs=0.125), 0.625, "pass"),  # on the edge of the band: inside
        (Tolerance(0.5, abs=0.125), 0.375, "pass"),
        (Tolerance(0.5, abs=0.125), 0.6251, "fail"),
        (Tolerance(0.5, abs=0.125), 0.3749, "fail"),
        (Tolerance(200.0, rel=0.05), 209.0, "pass"),  # ±10
        (Tolerance(200.0, rel=0.05), 211.0, "fail"),
        (Tolerance(-200.0, rel=0.05), -191.0, "pass"),  # relative to |value|
        (Tolerance(181.0, abs=0.0), 181.0, "pass"),  # abs 0: exact
        (Tolerance(181.0, abs=0.0), 182.0, "fail"),
    ],
)
def test_a_measurement_passes_inside_its_band_and_fails_outside(
    tolerance: Tolerance, measured: float, status: str
) -> None:
    result = check("fold-0/test/ndcg@10", tolerance, {"fold-0/test/ndcg@10": measured})
    assert result.status == status
    assert result.passed is (status == "pass")
    assert result.difference == pytest.approx(measured - tolerance.value)


def test_with_both_bands_the_looser_one_applies() -> None:
    near_zero = Tolerance(0.01, abs=0.005, rel=0.1)  # rel gives ±0.001, abs ±0.005
    large = Tolerance(100.0, abs=0.005, rel=0.1)  # rel gives ±10
    assert near_zero.allowed == 0.005 and large.allowed == 10.0
    assert check("m", near_zero, {"m": 0.014}).passed
    assert check("m", large, {"m": 109.0}).passed
    assert not check("m", large, {"m": 111.0}).passed


def test_a_metric_the_run_did_not_produce_fails() -> None:
    result = check("fold-0/test/ndcg@5", Tolerance(0.2, abs=1.0), {"fold-0/test/ndcg@10": 0.2})
    assert result.status == "missing" and not result.passed
    assert result.measured is None and result.difference is None


def test_a_metric_that_is_not_a_number_fails_whatever_the_band() -> None:
    result = check("m", Tolerance(0.2, abs=math.inf), {"m": math.nan})
    assert result.status == "nan" and not result.passed and result.difference is None


def test_check_all_keeps_the_files_order_and_records_everything_in_json() -> None:
    expected = {"b": Tolerance(1.0, abs=0.1), "a": Tolerance(2.0, rel=0.5), "c": Tolerance(0.0, abs=0.0)}
    checks = check_all(expected, {"a": 2.9, "b": 1.0})
    assert [(c.metric, c.status) for c in checks] == [("b", "pass"), ("a", "pass"), ("c", "missing")]
    assert checks[1].to_json() == {
        "metric": "a",
        "expected": 2.0,
        "abs": None,
        "rel": 0.5,
        "allowed": 1.0,
        "measured": 2.9,
        "difference": pytest.approx(0.9),
        "status": "pass",
    }


# --------------------------------------------------------------------------- files

VALID = """\
description: tiny
preset: synth_small
data:
  source: synth
  generator: {seed: 7, n_events: 6000, start: "2026-01-01"}
chain:
  folds: [fold-0]
  parts: [test, val]
expected:
  fold-0/test/ndcg@10: {value: 0.14, abs: 0.002}
  mean/val/users: {value: 181, abs: 0, rel: 0.01}
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "exp.yaml"
    path.write_text(text)
    return path


def test_a_valid_file_loads_with_its_defaults_filled_in(tmp_path: Path) -> None:
    exp = load_experiment(write(tmp_path, VALID))
    assert (exp.name, exp.preset, exp.description) == ("exp", "synth_small", "tiny")
    assert exp.data.source == "synth" and exp.data.raw is None
    assert exp.data.generator == {"seed": 7, "n_events": 6000, "start": "2026-01-01"}
    assert exp.folds == ("fold-0",)
    assert exp.parts == ("val", "test")  # val first: the test refit reads its best epoch
    assert exp.check_leakage is True
    assert exp.expected == {
        "fold-0/test/ndcg@10": Tolerance(0.14, abs=0.002),
        "mean/val/users": Tolerance(181.0, abs=0.0, rel=0.01),
    }


@pytest.mark.parametrize("path", EXPERIMENTS, ids=lambda p: p.stem)
def test_every_shipped_experiment_loads_and_names_a_preset_that_exists(path: Path) -> None:
    exp = load_experiment(path)
    assert (DEFAULT_CONF_DIR / "experiment" / f"{exp.preset}.yaml").is_file()
    assert exp.expected and exp.description


MALFORMED = [
    ("missing preset", VALID.replace("preset: synth_small\n", ""), "preset: missing"),
    ("preset is a path", VALID.replace("preset: synth_small", "preset: ../../tmp/x"), "preset: must name a file of"),
    ("unknown field", VALID + "expect: {}\n", "expect: unknown field"),
    ("not a mapping", "- a\n- b\n", "top level: must be a mapping"),
    ("empty file", "", "top level: must be a mapping, got nothing"),
    ("bad yaml", VALID.replace("chain:", "chain: [oops"), "not valid YAML"),
    ("source missing", VALID.replace("  source: synth\n", ""), "data.source: missing"),
    ("folds not a list", VALID.replace("folds: [fold-0]", "folds: fold-0"), "chain.folds: must be a non-empty list"),
    ("unknown part", VALID.replace("parts: [test, val]", "parts: [train]"), "chain.parts: 'train' is not one of"),
    ("leakage flag", VALID.replace("parts: [test, val]", "check_leakage: maybe"), "chain.check_leakage: must be"),
    ("value text", VALID.replace("value: 0.14", "value: high"), "expected.fold-0/test/ndcg@10.value: must be a finite"),
    ("value missing", VALID.replace("value: 0.14, ", ""), "expected.fold-0/test/ndcg@10.value: missing"),
    ("no band", VALID.replace(", abs: 0.002", ""), "expected.fold-0/test/ndcg@10: give a tolerance"),
    ("negative band", VALID.replace("abs: 0.002", "abs: -0.1"), "expected.fold-0/test/ndcg@10.abs: must be >= 0"),
    ("band typo", VALID.replace("abs: 0.002", "tol: 0.002"), "expected.fold-0/test/ndcg@10.tol: unknown field"),
    ("key without fold", VALID.replace("fold-0/test/ndcg@10", "test/ndcg@10"), "expected.test/ndcg@10: metric keys"),
    ("part not trained", VALID.replace("[test, val]", "[val]"), "expected.fold-0/test/ndcg@10: part 'test' is not"),
    ("fold not run", VALID.replace("fold-0/test", "fold-3/test"), "expected.fold-3/test/ndcg@10: fold 'fold-3' is not"),
    ("nothing expected", VALID.split("expected:")[0] + "expected: {}\n", "expected: lists no metric"),
    (
        "digest",
        VALID.replace("source: synth", "source: synth\n  sha256: {a.csv: abc}"),
        "data.sha256.a.csv: must be 64",
    ),
    ("generator and raw", VALID.replace("source: synth", "source: synth\n  raw: x"), "data.raw: give either"),
    ("generator value", VALID.replace("seed: 7", "seed: [7]"), "data.generator.seed: must be a string, number"),
    (
        "unknown ranked metric",
        VALID.replace("fold-0/test/ndcg@10", "fold-0/test/happiness@10"),
        "expected.fold-0/test/happiness@10: 'happiness@10' is not a metric train reports",
    ),
    ("metric at k zero", VALID.replace("fold-0/test/ndcg@10", "fold-0/test/ndcg@0"), "'ndcg@0' is not a metric"),
]


def test_a_file_that_is_no_experiment_is_never_echoed(tmp_path: Path) -> None:
    """A CSV of customer ids given by mistake reads as one YAML string: the message names its type only."""
    path = write(tmp_path, "user_id,item_id\nC0000137,P0000033\n")
    with pytest.raises(ConfigError, match="top level: must be a mapping, got text$") as info:
        load_experiment(path)
    assert "C0000137" not in str(info.value)


@pytest.mark.parametrize(("text", "message"), [m[1:] for m in MALFORMED], ids=[m[0] for m in MALFORMED])
def test_a_malformed_file_is_one_line_naming_the_file_and_the_field(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_experiment(path)
    error = str(info.value)
    assert error.startswith(f"{path}: ") and message in error
    assert "\n" not in error


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such experiment file"):
        load_experiment(tmp_path / "nope.yaml")
