"""One override string for the whole chain: every command accepts the shared keys of
conf/chain.yaml, uses those its config has, ignores the rest, and refuses the same
mistakes the same way."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from omegaconf import OmegaConf
from typer.testing import CliRunner

from recsys_cli.cli import app
from recsys_cli.config import CHAIN, DEFAULT_CONF_DIR, compose, used_overrides
from recsys_cli.errors import ConfigError
from recsys_cli.schemas import PRIMARY

# The string a user sets once; every root key here is one of the chain's.
ARGS = [
    "paths.data_dir=shop-data",
    "data=generic",
    "data.path=shop-export",
    "split=rolling_origin",
    "target=purchases",
    "features=default",
    "engine=polars",
    "pii=development",
    "registry.uri=shop-registry",
    "runs_dir=shop-runs",
    "seed=7",
]
# What each primary config needs besides (conf/sweep.yaml has no preset for the default model).
EXTRA = {"sweep": ["model=bpr_mf", "sweep=tiny"]}
COMMANDS = sorted(name for name in PRIMARY if name != CHAIN)
SHARED = sorted(str(key) for key in compose(CHAIN))


def composed(name: str, overrides: list[str]) -> dict[str, Any]:
    cfg = compose(name, [*overrides, *EXTRA.get(name, [])])
    plain = OmegaConf.to_container(cfg, resolve=True)
    assert isinstance(plain, dict)
    return {str(key): value for key, value in plain.items()}


def test_the_chain_lists_the_shared_keys() -> None:
    assert SHARED == sorted(
        ["paths", "data", "split", "target", "features", "engine", "pii", "registry"]
        + ["lake_dir", "split_dir", "features_dir", "runs_dir", "seed"]
    )


@pytest.mark.parametrize("name", COMMANDS)
def test_every_command_accepts_the_string_and_uses_what_it_has(name: str) -> None:
    cfg = composed(name, ARGS)
    expected = {
        ("paths", "data_dir"): "shop-data",
        ("data", "name"): "generic",
        ("data", "path"): "shop-export",
        ("split", "name"): "rolling_origin",
        ("target", "name"): "purchases",
        ("registry", "uri"): "shop-registry",
        ("runs_dir",): "shop-runs",
        ("seed",): 7,
    }
    for path, value in expected.items():
        if path[0] in cfg:
            node = cfg[path[0]]
            assert (node if len(path) == 1 else node[path[1]]) == value, (name, path)


@pytest.mark.parametrize("name", COMMANDS)
def test_unused_keys_change_nothing(name: str) -> None:
    """The composed config, hence what a command saves and where it writes, is the one
    it gets from the keys it uses alone."""
    used = used_overrides(name, ARGS)
    assert composed(name, ARGS) == composed(name, used)


def test_what_ingest_and_train_use() -> None:
    assert used_overrides("ingest", ARGS) == [
        "paths.data_dir=shop-data",
        "data=generic",
        "data.path=shop-export",
        "engine=polars",
        "pii=development",
    ]
    unused_by_train = {"engine=polars", "pii=development", "registry.uri=shop-registry"}
    assert used_overrides("train", ARGS) == [o for o in ARGS if o not in unused_by_train]
    assert composed("ingest", ARGS) == composed("ingest", used_overrides("ingest", ARGS))
    saved = OmegaConf.to_yaml(compose("train", used_overrides("train", ARGS)))
    assert OmegaConf.to_yaml(compose("train", ARGS)) == saved
    assert used_overrides("evaluate", ARGS) == []


@pytest.mark.parametrize("name", COMMANDS)
@pytest.mark.parametrize(
    ("mistake", "message"),
    [
        ("datta=generic", "Could not override 'datta'"),  # not a key of the chain: never ignored
        ("modle=ease", "Could not override 'modle'"),
        ("+modle=ease", "modle = 'ease': unknown key"),
        ("split=nonexistent", "Could not find 'split/nonexistent'"),  # a group option checked even where unused
        ("data.pathh=x", "Could not override 'data.pathh'"),  # a misspelt key of a shared group
        ("seed=-1", "seed = -1: must be >= 0"),  # a value outside the schema
        ("runs_dir=a=b", "mismatched input '='"),  # '=' in a value must be quoted
    ],
)
def test_the_same_mistake_fails_on_every_command(name: str, mistake: str, message: str) -> None:
    with pytest.raises(ConfigError, match=rf"^config '{name}': .*{message}"):
        composed(name, [*ARGS, mistake])


def test_a_key_of_one_command_is_not_shared() -> None:
    compose("train", ["model=ease"])
    with pytest.raises(ConfigError, match="Could not override 'model'"):
        compose("ingest", ["model=ease"])


def test_override_forms_of_a_shared_key() -> None:
    # '=' inside a quoted value; `++` sets or adds; `~` deletes: applied where the key is,
    # ignored where it is not.
    assert compose("train", ["runs_dir='a=b'"]).runs_dir == "a=b"
    assert compose("train", ["++runs_dir=elsewhere"]).runs_dir == "elsewhere"
    for form in ("runs_dir='a=b'", "++runs_dir=elsewhere", "++seed=3"):
        assert composed("ingest", [form]) == composed("ingest", [])
    # `+` appends a key that must not exist yet: refused alike by a command that has it and one that does not.
    for name in ("train", "ingest"):
        with pytest.raises(ConfigError, match="An item is already at 'runs_dir'"):
            compose(name, ["+runs_dir=x"])
    # Deleting a required key fails where the schema needs it, and in the chain.
    for name in ("train", "ingest"):
        with pytest.raises(ConfigError, match="seed: is required"):
            compose(name, ["~seed"])


@pytest.mark.parametrize("name", COMMANDS)
def test_the_chain_defaults_are_every_command_s_defaults(name: str) -> None:
    """The chain checks unused keys against its own defaults: they must be the ones a
    command that uses the key starts from (seed aside: each command has its own)."""
    own, chain = composed(name, []), composed(CHAIN, [])
    for key in set(own) & set(chain) - {"seed"}:
        assert own[key] == chain[key], key


def test_a_config_folder_without_a_chain_shares_nothing(tmp_path: Path) -> None:
    conf = tmp_path / "conf"
    (conf / "paths").mkdir(parents=True)
    (conf / "paths" / "default.yaml").write_text((DEFAULT_CONF_DIR / "paths" / "default.yaml").read_text())
    (conf / "registry.yaml").write_text("defaults:\n  - paths: default\n  - _self_\n")
    with pytest.raises(ConfigError, match="Could not override 'runs_dir'"):
        compose("registry", ["runs_dir=x"], conf)


def test_the_configuration_guide_names_every_shared_key() -> None:
    guide = (DEFAULT_CONF_DIR.parent / "docs" / "guide" / "configuration.md").read_text()
    assert all(f"`{key}`" in guide for key in SHARED), [k for k in SHARED if f"`{k}`" not in guide]


def test_ingest_and_split_take_the_whole_string(tmp_path: Path) -> None:
    runner = CliRunner()
    root = tmp_path / "shop"
    chain = [f"paths.data_dir={root}", f"runs_dir={tmp_path / 'runs'}", f"registry.uri={tmp_path / 'registry'}"]
    chain += ["split=global_temporal", "target=engagement", "features=default", "seed=7"]
    synth = ["data.generator.n_events=1500", "data.generator.n_days=40"]
    for args in (["datasets", "synth", *chain, *synth], ["ingest", *chain], ["split", *chain]):
        result = runner.invoke(app, args, catch_exceptions=False)
        assert result.exit_code == 0, result.output
    assert (root / "lake" / "synth").is_dir()
    assert (root / "splits" / "synth" / "global_temporal-engagement").is_dir()
    assert not (tmp_path / "runs").exists() and not (tmp_path / "registry").exists()

    result = runner.invoke(app, ["ingest", *chain, "modle=ease"])
    assert result.exit_code == 1 and "Could not override 'modle'" in result.output
