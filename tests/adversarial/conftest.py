"""Harness of the adversarial suite: bad inputs go through the real CLI, in a subprocess.

One tiny shop is built once per session through the CLI itself (synth -> ingest -> split ->
features -> train), then restored before every test at the same absolute path, so that runs
which record absolute paths still point inside the copy a test may tamper with. A refused
command must leave one line on stderr, no traceback, no change to what existed, and no raw
personal identifier anywhere it wrote.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

# Small enough that every command answers in about a second, large enough that every fold has users.
SYNTH = ("data.generator.n_events=3000", "data.generator.n_days=40")
CLI_TIMEOUT_S = 180


@dataclass(frozen=True)
class CliResult:
    """What one `recsys` process did."""

    args: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str

    def describe(self, lines: int = 6) -> str:
        """The command, its exit code and the last stderr lines (progress bars left out)."""
        kept = [line for line in self.stderr.strip().splitlines() if "━" not in line]
        head = "\n".join(kept[-lines:]) or self.stdout.strip()[-600:]
        return f"$ recsys {' '.join(self.args)}\nexit {self.returncode}\n{head}"


# Every CLI result of the running test, for the failure report written by pytest_runtest_makereport.
_RESULTS: list[CliResult] = []


def cli_env(**extra: str) -> dict[str, str]:
    """A plain environment: wide lines so one message stays one line, no colour, no debug, no key."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RECSYS_")}
    env.update({"COLUMNS": "400", "LINES": "100", "NO_COLOR": "1", "TERM": "dumb", "PYTHONHASHSEED": "0"})
    env.update(extra)
    return env


def run_cli(args: Iterable[str | Path], cwd: Path, env: dict[str, str] | None = None) -> CliResult:
    """`recsys ARGS` in a fresh interpreter, as a user would run it."""
    argv = tuple(str(a) for a in args)
    proc = subprocess.run(
        [sys.executable, "-m", "recsys_cli", *argv],
        cwd=cwd,
        env=env or cli_env(),
        capture_output=True,
        timeout=CLI_TIMEOUT_S,
        check=False,
    )
    result = CliResult(
        argv,
        proc.returncode,
        proc.stdout.decode("utf-8", errors="replace"),
        proc.stderr.decode("utf-8", errors="replace"),
    )
    _RESULTS.append(result)
    return result


def cases(table: Mapping[str, Any], fast: int | None = None, unpack: bool = False) -> list[Any]:
    """A table's entries as pytest params named by their keys. Entries past the first `fast` are marked
    slow: the default run keeps the issue's cases and a few of each class (about 3 minutes in all);
    `pytest -m ""` runs every one."""
    params = []
    for i, (name, value) in enumerate(table.items()):
        marks = [pytest.mark.slow] if fast is not None and i >= fast else []
        params.append(pytest.param(*(value if unpack else (value,)), id=name, marks=marks))
    return params


# ---------------------------------------------------------------- snapshots


Entry = tuple[str, int, str, int]


def snapshot(root: Path) -> dict[str, Entry]:
    """Every path under root: kind, size, sha256 and mtime of files; link targets; folders."""
    entries: dict[str, Entry] = {}
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        for name in [*dirnames, *filenames]:
            path = Path(dirpath) / name
            rel = path.relative_to(root).as_posix()
            if path.is_symlink():
                entries[rel] = ("link", 0, os.readlink(path), 0)
            elif path.is_dir():
                entries[rel] = ("dir", 0, "", 0)
            elif path.is_file():
                stat = path.stat()
                entries[rel] = ("file", stat.st_size, _sha256(path), stat.st_mtime_ns)
    return entries


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _under(rel: str, prefixes: Iterable[str]) -> bool:
    return any(rel == p or rel.startswith(p.rstrip("/") + "/") for p in prefixes)


def changed_paths(before: dict[str, Entry], after: dict[str, Entry], may_change: Iterable[str] = ()) -> list[str]:
    """Pre-existing paths removed or altered, outside the paths a test expects to change."""
    allowed = tuple(may_change)
    return sorted(
        f"{rel} ({'removed' if rel not in after else 'modified'})"
        for rel, entry in before.items()
        if after.get(rel) != entry and not _under(rel, allowed)
    )


def new_paths(before: dict[str, Entry], after: dict[str, Entry]) -> list[str]:
    return sorted(rel for rel in after if rel not in before)


# ---------------------------------------------------------------- personal data


def leaked_secrets(texts: Iterable[str], secrets: frozenset[str]) -> list[str]:
    found: set[str] = set()
    for text in texts:
        found.update(s for s in secrets if s in text)
    return sorted(found)


def file_text(path: Path) -> str:
    """A written file as text: Parquet through its columns (compression hides raw bytes), others as bytes."""
    raw = path.read_bytes()
    text = raw.decode("utf-8", errors="replace")
    if raw[:4] == b"PAR1":
        try:
            import polars as pl

            frame = pl.read_parquet(path)
            text += "\n" + frame.cast({c: pl.String for c in frame.columns}, strict=False).write_csv()
        except Exception as exc:  # noqa: BLE001 - a damaged file is not our finding here
            text += f"\n<unreadable parquet: {type(exc).__name__}>"
    return text


def written_files(root: Path, before: dict[str, Entry], after: dict[str, Entry]) -> list[Path]:
    """New or changed files, except raw inputs (`data/raw*/`), which hold raw ids by design."""
    return [
        root / rel
        for rel, entry in after.items()
        if entry[0] == "file" and before.get(rel) != entry and not _is_raw_input(rel)
    ]


def _is_raw_input(rel: str) -> bool:
    """A raw input folder (`data/raw*/`, also inside a reproduction's work folder)."""
    parts = rel.split("/")
    return any(a == "data" and b.startswith("raw") for a, b in zip(parts, parts[1:], strict=False))


# ---------------------------------------------------------------- assertions


def refusal_problems(
    result: CliResult,
    before: dict[str, Entry],
    after: dict[str, Entry],
    secrets: frozenset[str],
    root: Path,
    may_change: Iterable[str] = (),
    allow_new: bool = False,
) -> list[str]:
    problems: list[str] = []
    if result.returncode <= 0:
        problems.append(f"exit code {result.returncode} (expected a refusal, > 0)")
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    if len(lines) != 1:
        problems.append(f"{len(lines)} non-empty stderr lines (expected exactly 1)")
    if "Traceback" in result.stdout or "Traceback" in result.stderr:
        problems.append("a traceback was printed")
    problems += [f"pre-existing path changed: {p}" for p in changed_paths(before, after, may_change)]
    if not allow_new:
        extra = [p for p in new_paths(before, after) if not _under(p, may_change) and not p.endswith(".lock")]
        problems += [f"refusal left a new path behind: {p}" for p in extra[:10]]
    texts = [result.stdout, result.stderr, *(file_text(p) for p in written_files(root, before, after))]
    leaks = leaked_secrets(texts, secrets)
    if leaks:
        problems.append(f"raw personal identifiers in the output: {len(leaks)} (e.g. {leaks[0][:3]}...)")
    return problems


def assert_refused(
    result: CliResult,
    before: dict[str, Entry],
    after: dict[str, Entry],
    secrets: frozenset[str],
    root: Path,
    may_change: Iterable[str] = (),
    allow_new: bool = False,
) -> None:
    """Non-zero exit, one non-empty stderr line, no traceback, nothing that existed changed,
    no new leftovers, and no raw identifier in stdout, stderr or any file written."""
    problems = refusal_problems(result, before, after, secrets, root, may_change, allow_new)
    assert not problems, "\n".join([*problems, result.describe(12)])


def assert_succeeded_cleanly(
    result: CliResult,
    before: dict[str, Entry],
    after: dict[str, Entry],
    secrets: frozenset[str],
    root: Path,
    may_change: Iterable[str] = (),
    may_hold_raw_ids: Iterable[str] = (),
) -> None:
    """Exit 0, no traceback, only the expected paths changed, no raw identifier written (except in
    `may_hold_raw_ids`: files the user asked to receive raw ids in)."""
    problems: list[str] = []
    if result.returncode != 0:
        problems.append(f"exit code {result.returncode} (expected 0)")
    if "Traceback" in result.stdout or "Traceback" in result.stderr:
        problems.append("a traceback was printed")
    problems += [f"pre-existing path changed: {p}" for p in changed_paths(before, after, may_change)]
    exempt = {root / rel for rel in may_hold_raw_ids}
    written = [p for p in written_files(root, before, after) if p not in exempt]
    leaks = leaked_secrets([result.stdout, result.stderr, *(file_text(p) for p in written)], secrets)
    if leaks:
        problems.append(f"raw personal identifiers in the output: {len(leaks)} (e.g. {leaks[0][:3]}...)")
    assert not problems, "\n".join([*problems, result.describe(12)])


# ---------------------------------------------------------------- the workspace


@dataclass
class Workspace:
    """A built shop: raw synth logs, lake, split, features and runs, at `root` (the cwd of every command)."""

    root: Path
    runs: dict[str, str]
    secrets: frozenset[str]
    before: dict[str, Entry] = field(default_factory=dict)
    last: CliResult = CliResult((), -1, "", "")

    def path(self, rel: str) -> Path:
        return self.root / rel

    def env(self, **extra: str) -> dict[str, str]:
        return cli_env(**extra)

    def run(self, *args: str | Path, env: dict[str, str] | None = None) -> CliResult:
        self.last = run_cli(args, self.root, env)
        return self.last

    def _run_between_snapshots(
        self, args: tuple[str | Path, ...], env: dict[str, str] | None
    ) -> tuple[CliResult, dict[str, Entry]]:
        """The command's result and the workspace after it; `before` is taken first unless the test took it."""
        if not self.before:
            self.freeze()
        return self.run(*args, env=env), snapshot(self.root)

    def freeze(self) -> None:
        """Take the `before` snapshot: call after the test's own set-up, just before the command."""
        self.before = snapshot(self.root)

    def refused(
        self, *args: str | Path, env: dict[str, str] | None = None, may_change: Iterable[str] = ()
    ) -> CliResult:
        """Run a command that must be refused, and check the refusal."""
        result, after = self._run_between_snapshots(args, env)
        assert_refused(result, self.before, after, self.secrets, self.root, may_change)
        return result

    def succeeds(
        self, *args: str | Path, env: dict[str, str] | None = None, may_change: Iterable[str] = ()
    ) -> CliResult:
        """Run a command that must succeed, touching only `may_change` among existing paths."""
        result, after = self._run_between_snapshots(args, env)
        assert_succeeded_cleanly(result, self.before, after, self.secrets, self.root, may_change)
        return result

    def handled(
        self,
        *args: str | Path,
        env: dict[str, str] | None = None,
        may_change: Iterable[str] = (),
        may_hold_raw_ids: Iterable[str] = (),
    ) -> CliResult:
        """Either outcome is acceptable, done cleanly: exit 0 as `succeeds`, or a refusal as `refused`."""
        result, after = self._run_between_snapshots(args, env)
        if result.returncode == 0:
            assert_succeeded_cleanly(result, self.before, after, self.secrets, self.root, may_change, may_hold_raw_ids)
        else:
            assert_refused(result, self.before, after, self.secrets, self.root, may_change)
        return result


LAKE = "data/lake/synth"
RAW = "data/raw/synth"
SPLIT = "data/splits/synth/global_temporal-engagement"
FEATURES = "data/features/synth/global_temporal-engagement/default"


def _build(root: Path) -> dict[str, str]:
    root.mkdir(parents=True)
    steps: list[tuple[str, ...]] = [
        ("datasets", "synth", *SYNTH),
        ("ingest",),
        ("split",),
        ("features",),
        ("split", "target=purchases"),
        ("features", "target=purchases"),
    ]
    for args in steps:
        result = run_cli(args, root)
        assert result.returncode == 0, result.describe(30)
    runs: dict[str, str] = {}
    for name, args in {
        "popularity": ("train", "model=popularity"),
        "ease": ("train", "model=ease"),
        "item_knn": ("train", "model=item_knn"),
        "popularity_purchases": ("train", "model=popularity", "target=purchases"),
        "popularity_test": ("train", "model=popularity", "part=test"),
    }.items():
        result = run_cli(args, root)
        assert result.returncode == 0, result.describe(30)
        written = [line for line in result.stdout.splitlines() if "run written:" in line]
        assert written, result.describe(30)
        run = written[-1].split("run written:", 1)[1].strip()
        runs[name] = Path(run).relative_to(root).as_posix() if Path(run).is_absolute() else run
    return runs


def _secrets(raw: Path) -> frozenset[str]:
    """The synthetic shop's raw personal identifiers: user ids, emails, phones, IP addresses."""
    values: set[str] = set()
    with (raw / "users.csv").open(newline="") as handle:
        for row in csv.DictReader(handle):
            values.update(row[c] for c in ("customer_id", "email", "phone") if row.get(c))
    with (raw / "events.csv").open(newline="") as handle:
        for row in csv.DictReader(handle):
            values.update(row[c] for c in ("customer_id", "ip") if row.get(c))
    return frozenset(v for v in values if len(v) >= 6)


@pytest.fixture(scope="session")
def _template(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dict[str, str], frozenset[str]]:
    base = tmp_path_factory.mktemp("adversarial")
    live = base / "shop"
    runs = _build(live)
    secrets = _secrets(live / RAW)
    template = base / "template"
    shutil.copytree(live, template, symlinks=True)
    return live, template, runs, secrets


@pytest.fixture
def ws(_template: tuple[Path, Path, dict[str, str], frozenset[str]]) -> Iterator[Workspace]:
    """A pristine copy of the built shop, at the same absolute path for every test."""
    live, template, runs, secrets = _template
    _restore(live, template)
    yield Workspace(live, dict(runs), secrets)


def _restore(live: Path, template: Path) -> None:
    if live.exists() or live.is_symlink():
        _make_writable(live)
        shutil.rmtree(live)
    shutil.copytree(template, live, symlinks=True)


def _make_writable(root: Path) -> None:
    for dirpath, _, _ in os.walk(root):
        os.chmod(dirpath, 0o755)


# ---------------------------------------------------------------- tampering helpers


def flip_byte(path: Path, offset: int | None = None) -> None:
    """Flip one byte in the middle of a file (keeps its size)."""
    data = bytearray(path.read_bytes())
    at = len(data) // 2 if offset is None else offset
    data[at] ^= 0xFF
    path.write_bytes(bytes(data))


def edit_json(path: Path, edit: object) -> None:
    """Rewrite a JSON file through `edit(obj) -> obj`."""
    obj = json.loads(path.read_text())
    path.write_text(json.dumps(edit(obj), indent=1))  # type: ignore[operator]


# ---------------------------------------------------------------- failure report

_REPORT = os.environ.get("ADVERSARIAL_REPORT")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "slice(name): the hardening slice (A..F) whose code the case exercises")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):  # type: ignore[no-untyped-def]
    outcome = yield
    report = outcome.get_result()
    if report.when == "setup":
        _RESULTS.clear()
    if report.when != "call":
        return
    if _REPORT and report.failed:
        marker = item.get_closest_marker("slice")
        entry = {
            "test": item.nodeid,
            "slice": marker.args[0] if marker else "none",
            "commands": [r.describe(6) for r in _RESULTS],
            "message": str(report.longrepr.reprcrash.message if hasattr(report.longrepr, "reprcrash") else "")[:1500],
        }
        with open(_REPORT, "a") as handle:
            handle.write(json.dumps(entry) + "\n")
    _RESULTS.clear()
