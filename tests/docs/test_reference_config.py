"""The config reference (scripts/docs_config.py) reads each key's default from the YAML
and its meaning from the comment beside or above it, and says which keys have none."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.docs import ROOT, load_script

docs_config = load_script("docs_config")

# Presets pin other groups' keys; theirs may be any key and take its meaning from its group.
PRESETS = "experiment"

MODEL_A = """\
# A model for the test.
# Its second line.
_target_: pkg.A
# The penalty.
# Relative to the mean.
l2: 8.0
dim: 64  # width of the embeddings

alone: 3
grid:
  l2: [2.0, 8.0]
events:
  - view
  - purchase
name: "a # not a comment"
"""
MODEL_B = """\
_target_: pkg.B
dim: 32
"""
PRESET = """\
# @package _global_
# A preset pinning two groups.
defaults:
  - override /model: a
model:
  dim: 16  # smaller
"""


@pytest.fixture
def conf(tmp_path: Path) -> Path:
    (tmp_path / "model").mkdir()
    (tmp_path / "experiment").mkdir()
    (tmp_path / "model" / "a.yaml").write_text(MODEL_A)
    (tmp_path / "model" / "b.yaml").write_text(MODEL_B)
    (tmp_path / "experiment" / "small.yaml").write_text(PRESET)
    (tmp_path / "train.yaml").write_text("defaults:\n  - model: a\n  - _self_\nseed: 42  # the run's seed\n")
    (tmp_path / "evaluate.yaml").write_text("seed: 7\n")
    return tmp_path


def keys(option: object) -> list[tuple[str, str, str]]:
    return [(k.path, k.default, k.meaning) for k in option.keys]  # type: ignore[attr-defined]


def test_defaults_and_meanings_come_from_the_yaml_and_its_comments(conf: Path) -> None:
    preset, a, b, evaluate, train = docs_config.options(conf)  # groups in order, then the primary configs
    assert (a.group, a.name, a.file) == ("model", "a", "conf/model/a.yaml")
    assert a.description == "A model for the test. Its second line."
    assert keys(a) == [
        ("model._target_", "pkg.A", "the class this option builds"),
        ("model.l2", "8.0", "The penalty. Relative to the mean."),
        ("model.dim", "64", "width of the embeddings"),
        ("model.alone", "3", ""),  # a blank line parts it from any comment
        ("model.grid.l2", "[2.0, 8.0]", ""),
        ("model.events", "[view, purchase]", ""),
        ("model.name", "a # not a comment", ""),
    ]
    assert keys(b)[1] == ("model.dim", "32", "width of the embeddings"), "said once for the group"
    assert preset.description == "A preset pinning two groups."
    assert keys(preset)[1] == ("model.dim", "16", "smaller"), "a _global_ package has no prefix"
    assert (train.group, train.file) == ("", "conf/train.yaml")
    assert keys(train)[-1] == ("seed", "42", "the run's seed")
    assert keys(evaluate) == [("seed", "7", "the run's seed")], "the primary configs share meanings too"


def test_keys_without_a_meaning_are_listed(conf: Path) -> None:
    assert docs_config.missing_meanings(conf) == {
        "conf/model/a.yaml": ["model.alone", "model.grid.l2", "model.events", "model.name"]
    }


def test_the_page_has_every_group_and_option(conf: Path) -> None:
    page = docs_config.page(conf)
    for heading in ("## model", "### `model=a`", "### `model=b`", "### `experiment=small`", "### `recsys train`"):
        assert heading in page
    assert "| `model.dim` | `64` | width of the embeddings |" in page


def test_every_config_file_of_the_project_is_in_the_reference() -> None:
    listed = {option.file for option in docs_config.options()}
    assert listed == {f"conf/{p.relative_to(ROOT / 'conf').as_posix()}" for p in (ROOT / "conf").rglob("*.yaml")}


def test_every_group_explains_every_key() -> None:
    groups = {option.file: option.group for option in docs_config.options()}
    missing = {
        file: keys
        for file, keys in docs_config.missing_meanings().items()
        if groups[file] and groups[file] != PRESETS  # "": a primary config, conf/<command>.yaml
    }
    assert not missing, "keys without a comment saying what they mean:\n" + "\n".join(
        f"{file}: {', '.join(keys)}" for file, keys in missing.items()
    )
