"""One override string, passed as is to every command of the app, on a tiny shop.

Every command accepts the chain's shared keys (conf/chain.yaml): the string below
goes, unchanged, to each command found in the Typer app. A command runs to the end
where the tiny shop lets it; otherwise it stops on its own, later refusal (no such
experiment file, no event log), never on the string. A typo and a bad group option
in the string are refused by every command as one line, before any work.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from typer.main import get_command
from typer.testing import CliRunner

from recsys_cli.cli import app

runner = CliRunner()


def shared_args(root: Path) -> list[str]:
    """The string a user sets once: every root key is one of the chain's."""
    return [
        f"paths.data_dir={root / 'data'}",
        "data=synth",
        "data.generator.n_events=1500",
        "data.generator.n_days=40",
        "split=global_temporal",
        "target=engagement",
        "features=default",
        f"runs_dir={root / 'runs'}",
        f"registry.uri={root / 'registry'}",
        "seed=7",
    ]


@dataclass(frozen=True)
class Chain:
    root: Path
    args: list[str]
    popularity: Path  # a run folder
    ease: Path  # a run folder, exported and pushed as `shop` versions 1 and 2, production at 2
    package: Path
    outputs: dict[str, str]  # what the steps that built the shop printed, given the string


def invoke(args: list[str]) -> Any:
    result = runner.invoke(app, args)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result


def ok(args: list[str]) -> str:
    result = invoke(args)
    assert result.exit_code == 0, result.output
    return str(result.output)


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Chain]:
    root = tmp_path_factory.mktemp("chain")
    args = shared_args(root)
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(root)  # what a command writes relative to the working directory stays here
        # Rerun later, these would remake the folders the runs were trained on: they are
        # given the string here, once.
        outputs = {command: ok([*command.split(), *args]) for command in BUILT}
        ok(["train", *args])
        ok(["train", *args, "model=ease"])
        popularity, ease = (next((root / "runs" / model).iterdir()) for model in ("popularity", "ease"))
        ok(["export", str(ease), *args, "--name", "shop"])  # pushes version 1 to registry.uri
        package = ease / "package"
        ok(["registry", "push", str(package), "--uri", str(root / "registry")])  # version 2
        for version in ("1", "2"):
            ok(["registry", "promote", "shop", version, "--alias", "production", "--uri", str(root / "registry")])
        ok(["registry", "push", str(package), "--uri", str(root / "registry")])  # version 3, no alias
        yield Chain(root, args, popularity, ease, package, outputs)


@pytest.fixture(autouse=True)
def _in_the_chain_folder(chain: Chain, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(chain.root)


def _serve_without_listening(monkeypatch: pytest.MonkeyPatch) -> None:
    """`recsys serve` prepares the registry's model, then says where it would listen."""

    def run(prepared: Any, on_listening: Callable[[str, int], None], **_: Any) -> None:
        on_listening("127.0.0.1", 0)

    monkeypatch.setattr("recsys_cli.tasks.serve.run", run)


BUILT = ("datasets synth", "ingest", "split", "features")


# Each command of the app: (its arguments before the string, the exit code, a line of
# its output). A non-zero code is the command's own refusal, reached after the string
# was accepted.
def _cases(c: Chain) -> dict[str, tuple[list[str], int, str]]:
    runs, registry = c.root / "runs", c.root / "registry"
    return {
        "datasets list": ([], 0, "synth"),
        "datasets synth": ([], 0, "raw"),
        "ingest": ([], 0, "lake"),
        "split": ([], 0, "split"),
        "features": ([], 0, "features"),
        "check-leakage": ([], 0, ""),
        "train": (["model=popularity"], 0, "run written"),
        "evaluate": ([str(c.ease)], 0, "evaluation written"),
        "recommend": ([str(c.ease)], 0, "recommendations written"),
        "compare": ([str(c.popularity), str(c.ease), "--resamples", "50"], 0, "comparison written"),
        "abtest": ([str(c.popularity), str(c.ease)], 0, "experiment written"),
        "explain": ([str(c.root / "no-run")], 1, "no such run folder"),
        "reproduce": ([str(c.root / "no-experiment.yaml")], 1, "no such experiment file"),
        "export": ([str(c.ease), "--name", "shop"], 0, "package written"),
        "serve": (["serve.auth=false"], 0, "serving shop version"),
        "monitor": ([], 3, "monitoring written"),
        "retrain": ([], 0, "retrain written"),
        "lake describe": (["--brief"], 0, "checked:"),
        "sweep run": (["model=ease", "sweep=tiny"], 1, "the search space does not fit"),  # tiny's is bpr_mf's
        "sweep show": (["no-study"], 1, "no sweep folder"),
        "registry list": ([], 0, f"Registry {registry}"),
        "registry show": (["shop", "2"], 0, '"version": 2'),
        "registry push": ([str(c.package)], 0, f"to {registry}"),
        "registry promote": (["shop", "1", "--alias", "staging"], 0, "promoted: shop staging -> version 1"),
        "registry rollback": (["shop", "--alias", "production"], 0, "rolled back: shop production"),
        "registry delete": (["shop", "3"], 0, "deleted: shop version 3"),
        "registry gc": (["shop", "--keep", "5", "--dry-run"], 0, "would delete"),
        "events export": ([str(runs / "live.parquet")], 1, "no event log here"),
    }


def _leaves(command: Any, path: tuple[str, ...] = ()) -> list[str]:
    subcommands = getattr(command, "commands", None)
    if not subcommands:
        return [" ".join(path)]
    return [leaf for name, sub in subcommands.items() for leaf in _leaves(sub, (*path, name))]


COMMANDS = _leaves(get_command(app))
# Commands whose refusal of a shared key is a known gap, reported rather than hidden.
GAPS: dict[str, str] = {}


def test_every_command_of_the_app_is_covered(tmp_path: Path) -> None:
    placeholder = Chain(tmp_path, [], tmp_path, tmp_path, tmp_path, {})
    assert sorted(_cases(placeholder)) == sorted(COMMANDS)


@pytest.mark.parametrize("name", COMMANDS)
def test_the_string_is_accepted_by_every_command(
    name: str, chain: Chain, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> None:
    if name in GAPS:
        request.applymarker(pytest.mark.xfail(reason=GAPS[name], strict=True))
    if name == "serve":
        _serve_without_listening(monkeypatch)
    before, code, line = _cases(chain)[name]
    if name in BUILT:
        assert line in chain.outputs[name].lower()
        return
    result = invoke([*name.split(), *before, *chain.args])
    assert (result.exit_code, line in result.output) == (code, True), result.output


# The commands that have no config of their own, hence check the string against the chain alone.
CHAIN_ONLY = [name for name in COMMANDS if name in ("recommend", "compare", "explain", "reproduce", "sweep show")]
CHAIN_ONLY += [name for name in COMMANDS if name.startswith(("lake ", "registry "))]
MISTAKES = [
    *((name, "modle=ease", "'modle'") for name in COMMANDS),  # not a key of the chain
    *((name, "split=nonexistent", "Could not find 'split/nonexistent'") for name in COMMANDS),  # used or not
    # (compose's own handling of these is tests/test_config_chain.py's)
    *((name, "data.pathh=x", "Could not override 'data.pathh'") for name in CHAIN_ONLY),  # a misspelt key
    *((name, "seed=-1", "seed = -1: must be >= 0") for name in CHAIN_ONLY),  # a value outside the schema
]


@pytest.mark.parametrize(("name", "mistake", "refusal"), MISTAKES)
def test_a_mistake_in_the_string_is_refused_by_every_command(
    name: str, mistake: str, refusal: str, chain: Chain, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Refused as one line before any work: nothing is written where the string points."""
    monkeypatch.chdir(tmp_path)
    before = _cases(chain)[name][0]
    result = invoke([*name.split(), *before, *shared_args(tmp_path), mistake])
    assert result.exit_code == 1, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and refusal in lines[0], result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # refused before any work


def test_a_command_without_a_config_names_the_key_it_refuses() -> None:
    result = invoke(["registry", "list", "model=ease"])
    assert result.exit_code == 1
    assert "recsys registry list: 'model' is not a key this command takes" in result.output


def test_the_registry_comes_from_the_string_unless_uri_is_given(chain: Chain, tmp_path: Path) -> None:
    listed = json.loads(ok(["registry", "list", "--json", *chain.args]))
    assert [row["name"] for row in listed] == ["shop"]
    assert "no models in" in ok(["registry", "list", *chain.args, "--uri", str(tmp_path / "other")])
    by_group = ok(["registry", "list", "registry=default", f"registry.uri={chain.root / 'registry'}"])
    assert f"Registry {chain.root / 'registry'}" in by_group


def test_an_optional_argument_does_not_swallow_the_string(chain: Chain) -> None:
    """`recsys registry list registry.uri=X` lists models (no NAME); `recsys lake
    describe paths.data_dir=X` describes the lake of X (no PATH)."""
    assert "shop" in ok(["registry", "list", f"registry.uri={chain.root / 'registry'}"])
    described = ok(["lake", "describe", f"paths.data_dir={chain.root / 'data'}", "--brief"])
    assert "checked:" in described
    missing = invoke(["lake", "describe", f"paths.data_dir={chain.root / 'elsewhere'}", "--brief"])
    assert missing.exit_code == 1 and str(chain.root / "elsewhere" / "lake" / "synth") in missing.output


def test_seed_of_the_string_is_the_bootstrap_seed_unless_given(chain: Chain) -> None:
    def seed_of(*extra: str) -> Any:
        out = chain.root / "cmp.json"
        ok(["compare", str(chain.popularity), str(chain.ease), "--resamples", "20", "--out", str(out), *extra])
        return json.loads(out.read_text()).get("seed")

    assert seed_of("seed=7") == 7
    assert seed_of("seed=7", "--seed", "3") == 3
    assert seed_of() == 0


def test_datasets_list_gives_the_string_s_source_keys_to_that_source_only(chain: Chain) -> None:
    rows = {line.split()[1]: line for line in ok(["datasets", "list", *chain.args]).splitlines() if "│ " in line}
    assert f"present ({chain.root / 'data' / 'raw' / 'synth'})" in rows["synth"]
    assert f"missing ({chain.root / 'data' / 'raw' / 'synth_drift'})" in rows["synth_drift"]
    assert "present" not in rows["generic"]
