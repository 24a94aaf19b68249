"""The Dockerfile and docker-compose.yml agree with the project. Docker cannot run on
our machines, so nothing here builds or starts the image: these tests check that its
install is the project's own (scripts/setup_venv.sh, the torch pin of pyproject.toml),
that it starts `recsys serve` the way docs/guide/deploying.md says, that the compose file's
overrides are valid serve configs, and that the volumes hold what the config writes."""

from __future__ import annotations

import fnmatch
import json
import re
import shlex
import tomllib
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
import yaml

from recsys_cli.config import DEFAULT_CONF_DIR, compose

ROOT = Path(__file__).resolve().parents[1]
SETUP = "scripts/setup_venv.sh"


def instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) per logical line: continuations joined, comments dropped
    (also those inside a continuation, as Docker does)."""
    logical, parts = [], []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        parts.append(line[:-1].strip() if line.endswith("\\") else line)
        if not line.endswith("\\"):
            logical.append(" ".join(parts))
            parts = []
    return [(line.split(None, 1)[0].upper(), (line.split(None, 1) + [""])[1]) for line in logical]


@pytest.fixture(scope="module")
def docker() -> list[tuple[str, str]]:
    return instructions((ROOT / "Dockerfile").read_text())


def args_of(docker: list[tuple[str, str]], name: str) -> list[str]:
    return [args for instruction, args in docker if instruction == name]


def last(docker: list[tuple[str, str]], name: str) -> str:
    found = args_of(docker, name)
    assert found, f"the Dockerfile has no {name}"
    return found[-1]


def run_command(args: str) -> str:
    """A RUN's shell command without its --mount/--network flags."""
    return re.sub(r"^(--\S+\s+)+", "", args)


def pyproject() -> dict[str, Any]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def entrypoint(docker: list[tuple[str, str]]) -> list[str]:
    return json.loads(last(docker, "ENTRYPOINT"))  # exec form: a JSON list


def workdir(docker: list[tuple[str, str]]) -> PurePosixPath:
    return PurePosixPath(last(docker, "WORKDIR"))


def test_the_image_installs_with_the_projects_own_setup_script(docker: list[tuple[str, str]]) -> None:
    """One install for checkouts, CI and the image: the Makefile's `setup` and the
    Dockerfile run the same script, and no RUN installs Python packages by itself."""
    runs = [run_command(args) for args in args_of(docker, "RUN")]
    setup_runs = [cmd for cmd in runs if SETUP in cmd]
    assert len(setup_runs) == 1, runs
    venv = re.search(r"\bVENV=(\S+)", setup_runs[0])
    assert venv, "the image's venv must be named (VENV=...), as the Makefile does"
    assert not [cmd for cmd in runs if re.search(r"\bpip3?\b.*\binstall\b", cmd)], "installs outside the setup script"
    assert any(f"{venv[1]}/bin" in args for args in args_of(docker, "ENV")), "the venv's bin must be on PATH"

    makefile = (ROOT / "Makefile").read_text()
    assert re.search(rf"^\s*VENV=\$\(VENV\) \./{re.escape(SETUP)}$", makefile, re.M), "make setup runs another install"
    # The README's quickstart (`make demo`) goes through `setup`, hence through the script.
    assert "make demo" in (ROOT / "README.md").read_text()
    assert re.search(r"^demo: .*\bsetup\b", makefile, re.M)


def test_the_setup_script_installs_the_torch_pin_of_pyproject_on_cpu() -> None:
    pins = [dep for dep in pyproject()["project"]["dependencies"] if dep.startswith("torch==")]
    assert len(pins) == 1
    script = (ROOT / SETUP).read_text()
    assert f"TORCH_VERSION={pins[0].removeprefix('torch==')}\n" in script
    # No GPU while an image builds: the CPU branch, from PyTorch's CPU index.
    assert "--index-url https://download.pytorch.org/whl/cpu" in script
    # A checkout gets the dev extra; the image asks for none (EXTRAS=), the package alone.
    assert "EXTRAS=${EXTRAS-dev}" in script and 'install -e ".[$EXTRAS]"' in script
    assert re.search(r"VENV=/opt/venv EXTRAS= \./scripts/setup_venv\.sh", (ROOT / "Dockerfile").read_text())


def test_the_copied_files_are_what_the_editable_install_and_the_configs_need(docker: list[tuple[str, str]]) -> None:
    sources = {src for args in args_of(docker, "COPY") for src in args.split()[:-1] if not src.startswith("--")}
    needed = {"pyproject.toml", pyproject()["project"]["readme"], SETUP, "recsys_cli"}
    needed.add(str(DEFAULT_CONF_DIR.relative_to(ROOT)))  # configs sit next to the package, found from it
    assert needed <= sources, needed - sources

    patterns = [p.strip() for p in (ROOT / ".dockerignore").read_text().splitlines()]
    patterns = [p for p in patterns if p and not p.startswith("#")]

    def sent(path: str) -> bool:  # Docker's rule: the last pattern that matches decides
        verdict = True
        for pattern in patterns:
            if fnmatch.fnmatch(path, pattern.lstrip("!")):
                verdict = pattern.startswith("!")
        return verdict

    assert all(sent(src) for src in sources), [src for src in sources if not sent(src)]
    assert not any(sent(path) for path in (".venv", "data", "runs", "registry", "bench_data", ".git", "tests"))


def test_the_base_is_a_slim_python_the_project_supports(docker: list[tuple[str, str]]) -> None:
    base = args_of(docker, "FROM")
    assert len(base) == 1
    match = re.fullmatch(r"python:3\.(\d+)-slim", base[0])
    assert match, base
    minimum = re.fullmatch(r">=3\.(\d+)", pyproject()["project"]["requires-python"])
    assert minimum and int(match[1]) >= int(minimum[1])


def test_the_service_runs_as_an_unprivileged_user(docker: list[tuple[str, str]]) -> None:
    names = [name for name, _ in docker]
    user = last(docker, "USER").split(":")[0]
    assert user not in ("root", "0")
    assert max(i for i, n in enumerate(names) if n == "USER") < names.index("ENTRYPOINT")


def test_the_entry_point_is_recsys_serve_listening_on_every_interface(docker: list[tuple[str, str]]) -> None:
    command = entrypoint(docker)
    assert command[:2] == ["recsys", "serve"]
    assert pyproject()["project"]["scripts"]["recsys"] == "recsys_cli.cli:main"
    options = dict(zip(command[2::2], command[3::2], strict=True))
    assert options["--host"] == "0.0.0.0"
    port = options["--port"]
    assert port in last(docker, "EXPOSE").split()

    health = last(docker, "HEALTHCHECK")
    probe = json.loads(health.split(" CMD ", 1)[1])
    assert probe[:2] == ["python", "-c"]  # no curl in slim images
    assert f"http://127.0.0.1:{port}/healthz" in probe[2]


def test_recsys_serve_takes_the_options_the_image_passes(docker: list[tuple[str, str]]) -> None:
    pytest.importorskip("recsys_cli.cli.serve", reason="recsys serve's command is not in this checkout")
    from typer.testing import CliRunner

    from recsys_cli.cli import app

    result = CliRunner().invoke(app, ["serve", "--help"], catch_exceptions=False)
    assert result.exit_code == 0
    for option in entrypoint(docker)[2::2]:
        assert option in result.output


def test_the_volumes_hold_the_registry_and_the_event_log_the_config_names(docker: list[tuple[str, str]]) -> None:
    cfg = compose("serve")
    home = workdir(docker)
    volumes = [PurePosixPath(v) for args in args_of(docker, "VOLUME") for v in json.loads(args)]
    for relative in (cfg.registry.uri, cfg.serve.event_log.dir):
        path = home / str(relative)
        assert any(path == v or v in path.parents for v in volumes), f"{path} is not on a volume: {volumes}"


@pytest.fixture(scope="module")
def services() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def serve_services(compose_file: dict[str, Any]) -> dict[str, Any]:
    return {name: s for name, s in compose_file["services"].items() if s.get("build") in (".", {"context": "."})}


def test_compose_runs_two_replicas_of_the_image_sharing_redis(services: dict[str, Any]) -> None:
    serve = serve_services(services)
    replicas = sum(s.get("deploy", {}).get("replicas", 1) for s in serve.values())
    assert replicas == 2, serve
    redis = [name for name, s in services["services"].items() if str(s.get("image", "")).startswith("redis:7")]
    assert len(redis) == 1
    urls = set()
    for name, service in serve.items():
        overrides = [arg for arg in service["command"] if "=" in arg and not arg.startswith("-")]
        cfg = compose("serve", overrides)  # the config the replica would start with, validated
        assert cfg.serve.state == "redis", name
        urls.add(str(cfg.serve.redis.url))
        assert redis[0] in service["depends_on"]
    assert len(urls) == 1 and urls.pop().startswith(f"redis://{redis[0]}:")
    ports = [p.rsplit(":", 2)[-2] for s in serve.values() for p in s["ports"]]
    assert len(set(ports)) == len(ports) == 2


def test_compose_replicas_share_the_registry_volume_and_take_keys_from_the_environment(
    services: dict[str, Any], docker: list[tuple[str, str]]
) -> None:
    registry = str(workdir(docker) / str(compose("serve").registry.uri))
    named = set(services.get("volumes") or {})
    mounted = set()
    for name, service in serve_services(services).items():
        mounts = {target: source for source, target, *_ in (v.split(":") for v in service["volumes"])}
        assert mounts.get(registry) in named, f"{name}: no named volume at {registry}"
        mounted.add(mounts[registry])
        env = service["environment"]
        assert env["RECSYS_API_KEY"].startswith("${RECSYS_API_KEY:?"), "the API key must be required"
        assert env["RECSYS_PII_KEY"].startswith("${RECSYS_PII_KEY")
    assert len(mounted) == 1


def deploy_section() -> str:
    """The docs' page on deploying the service."""
    return (ROOT / "docs" / "guide" / "deploying.md").read_text()


def test_the_docs_say_how_to_deploy_and_that_the_image_is_untested_here(docker: list[tuple[str, str]]) -> None:
    text = deploy_section()
    assert "untested on our machines" in text
    for needed in ("docker build", "docker compose up", "RECSYS_API_KEY", "RECSYS_PII_KEY", SETUP):
        assert needed in text, needed
    assert " ".join(entrypoint(docker)) in text
    runs = [line for line in text.replace("\\\n", " ").splitlines() if line.startswith("docker run ")]
    assert runs
    for line in runs:
        words = shlex.split(line)
        overrides = words[words.index("recsys-serve") + 1 :]
        compose("serve", overrides)  # what the page runs is a valid serve config
