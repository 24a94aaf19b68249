"""Every tutorial in docs/tutorials/ runs as written.

Each page's fenced ```bash blocks are extracted in order and run as one script
(`bash -euo pipefail`, one shell per page, so variables carry from block to
block) in a fresh temporary folder, with this venv's `bin/` first on PATH (so
`recsys` is the checkout's), and then the files the commands produced are
checked: a tutorial that stops working fails CI.

Where the test cannot run what a reader runs, the page says so in its source:

- `<!-- tutorial-test: skip — REASON -->` on the line before a block (blank lines
  between allowed) skips that block. A marker without a reason is refused, and so
  is any other `tutorial-test:` comment. Used for downloads and for runs that take
  minutes on the real data (each is run by another test, named in the reason).
- A shell variable with a default the reader keeps or sets,
  `VAR=${VAR:-default}`: the test sets VAR in the page's environment (the
  PostgreSQL URL, the S3 endpoint, a smaller model or data scope). What each
  test sets: movielens.md FOLDS=1 (the newest rolling-origin window only);
  sweep-postgres.md STUDY_DB (CI's PostgreSQL), a unique STUDY, TRAINER=default
  (the CPU), TRIALS=4, EPOCHS=2; scale-out.md S3_ENDPOINT (CI's moto server), a
  fresh BUCKET with moto's dummy AWS_* credentials, GPUS=2 (two gloo processes
  on the CPU), EPOCHS=2. own-data.md and monitor-retrain.md set nothing.
- movielens.md's skipped download is replaced by a small sample in MovieLens's
  format, written where the download puts it (tests/docs/conftest.py).

A page that needs a service (PostgreSQL, S3, Spark) skips when it is missing,
except under CI ($RECSYS_CI, set by .ci/run, which starts them), where a missing
service fails the test (tests/docs/conftest.py).
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.docs.conftest import write_movielens_sample
from tests.s3 import new_bucket

pytestmark = pytest.mark.minutes

REPO = Path(__file__).resolve().parents[2]
TUTORIALS = REPO / "docs" / "tutorials"
VENV_BIN = Path(sys.executable).parent
# A page that runs longer than this is stuck (a server that never answers, a loop).
# The MovieLens page takes about 70 s alone and passed 300 s once on a 2-core CI
# machine shared with the rest of the suite.
PAGE_TIMEOUT_S = 900

FENCE_OPEN = re.compile(r"^```(\S*)\s*$")
MARKER = re.compile(r"^<!--\s*tutorial-test:(?P<body>.*?)-->\s*$")
SKIP = re.compile(r"^\s*skip\s*(?:—|--|-|:)\s*(?P<reason>\S.*?)\s*$")


@dataclass(frozen=True)
class Block:
    """One fenced bash block of a page: its first line number, its text, and the
    reason it is skipped (None: it runs)."""

    line: int
    code: str
    skip: str | None


def bash_blocks(text: str, name: str = "page") -> list[Block]:
    """The page's ```bash blocks in order, each with the skip marker before it."""
    blocks: list[Block] = []
    lines = text.splitlines()
    marker: tuple[int, str] | None = None  # (line, reason) waiting for its block
    i = 0
    while i < len(lines):
        line = lines[i]
        found = MARKER.match(line.strip())
        if found:
            skip = SKIP.match(found["body"])
            if skip is None:
                raise ValueError(f"{name}:{i + 1}: a tutorial-test marker must read 'skip — <reason>': {line.strip()}")
            marker = (i + 1, skip["reason"])
            i += 1
            continue
        fence = FENCE_OPEN.match(line)
        if fence is None:
            if line.strip() and marker is not None:
                raise ValueError(f"{name}:{marker[0]}: a skip marker must come right before a ```bash block")
            i += 1
            continue
        end = next((j for j in range(i + 1, len(lines)) if lines[j].startswith("```")), None)
        if end is None:
            raise ValueError(f"{name}:{i + 1}: a fence that never closes")
        if fence[1] == "bash":
            blocks.append(Block(i + 1, "\n".join(lines[i + 1 : end]), marker[1] if marker else None))
        elif marker is not None:
            raise ValueError(f"{name}:{marker[0]}: a skip marker must come right before a ```bash block")
        marker = None
        i = end + 1
    if marker is not None:
        raise ValueError(f"{name}:{marker[0]}: a skip marker must come right before a ```bash block")
    return blocks


def script(blocks: list[Block]) -> str:
    """The blocks that run, as one bash script; each block says where it came from."""
    parts = ["set -euo pipefail"]
    for block in blocks:
        if block.skip is None:
            parts.append(f'echo "### tutorial block at line {block.line} ($SECONDS s)" >&2\n{block.code}')
    return "\n".join(parts) + "\n"


def run_page(page: str, workdir: Path, env: dict[str, str] | None = None) -> str:
    """Runs the page's blocks in `workdir`; fails the test with the output's tail
    when a command fails. Returns the output."""
    path = TUTORIALS / page
    blocks = bash_blocks(path.read_text(), page)
    assert any(b.skip is None for b in blocks), f"{page} has no block that runs"
    full_env = {
        **os.environ,
        "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        "XDG_CACHE_HOME": str(workdir / ".cache"),  # remote mirrors stay in the test's folder
        "COLUMNS": "200",
        **(env or {}),
    }
    full_env.pop("RECSYS_API_KEY", None)
    workdir.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen(
        ["bash", "-c", script(blocks)],
        cwd=workdir,
        env=full_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # its own process group: a server it left behind is stopped below
    )
    try:
        output, _ = proc.communicate(timeout=PAGE_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        output, _ = proc.communicate()
        pytest.fail(f"{page} ran past {PAGE_TIMEOUT_S} s:\n{output[-6000:]}")
    finally:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    assert proc.returncode == 0, f"{page} failed (exit {proc.returncode}):\n{output[-6000:]}"
    return output


def only(pattern: str, root: Path) -> Path:
    found = sorted(root.glob(pattern))
    assert len(found) == 1, f"{pattern} under {root}: {found}"
    return found[0]


# --- the parser ---------------------------------------------------------------


def test_blocks_come_in_order_with_their_skip_reasons() -> None:
    page = (
        "# T\n\n```bash\necho one\n```\n\ntext\n\n"
        "<!-- tutorial-test: skip — downloads from PyPI -->\n\n```bash\ncurl x\n```\n"
        "```python\nprint(1)\n```\n```bash\necho $A\necho two\n```\n"
    )
    assert bash_blocks(page) == [
        Block(3, "echo one", None),
        Block(11, "curl x", "downloads from PyPI"),
        Block(17, "echo $A\necho two", None),
    ]
    assert "curl" not in script(bash_blocks(page)) and "echo two" in script(bash_blocks(page))


@pytest.mark.parametrize(
    "marker",
    [
        "<!-- tutorial-test: skip -->",
        "<!-- tutorial-test: skip —  -->",
        "<!-- tutorial-test: run twice -->",
    ],
)
def test_a_marker_without_a_reason_is_refused(marker: str) -> None:
    with pytest.raises(ValueError, match="must read 'skip — <reason>'"):
        bash_blocks(f"{marker}\n```bash\nls\n```\n")


def test_a_marker_away_from_a_bash_block_is_refused() -> None:
    with pytest.raises(ValueError, match="right before a ```bash block"):
        bash_blocks("<!-- tutorial-test: skip — slow -->\nsome text\n```bash\nls\n```\n")
    with pytest.raises(ValueError, match="right before a ```bash block"):
        bash_blocks("<!-- tutorial-test: skip — slow -->\n```python\nx\n```\n")


@pytest.mark.parametrize("page", sorted(p.name for p in TUTORIALS.glob("*.md")))
def test_every_page_parses_and_skips_little(page: str) -> None:
    blocks = bash_blocks((TUTORIALS / page).read_text(), page)
    assert sum(b.skip is not None for b in blocks) <= 2, f"{page}: keep skip markers few"


# --- the tutorials ------------------------------------------------------------


def test_own_data(tmp_path: Path) -> None:
    run_page("own-data.md", tmp_path)
    lake = json.loads((tmp_path / "shop" / "lake" / "generic" / "manifest.json").read_text())
    assert lake["rows"]["events"] > 5000 and lake["rows"]["quarantine"] == 2
    run = only("runs/ease/*/", tmp_path)
    metrics = json.loads((run / "eval" / "val" / "metrics.json").read_text())
    assert 0 < metrics["headline"]["ndcg@10"]["value"] <= 1
    assert (run / "eval" / "val" / "report.html").stat().st_size > 10_000
    answer = json.loads((tmp_path / "answer.json").read_text())
    assert len(answer["items"]) == 10 and answer["fallback"] is None
    assert answer["model"] == {"name": "shop-ease", "version": 1}


def test_monitor_retrain(tmp_path: Path) -> None:
    output = run_page("monitor-retrain.md", tmp_path)
    assert re.findall(r"recsys monitor exited with (\d+)", output)[0] == "3"  # the shock is flagged
    assert "already retrained" in output  # the second retrain on the same lake does nothing
    before = json.loads((tmp_path / "version-before.json").read_text())
    after = json.loads((tmp_path / "version-after.json").read_text())
    assert (before["package"], before["version"], after["version"]) == ("shop-als", 1, 2)
    journal = json.loads(only("retrain/shop-als/*/retrain.json", tmp_path).read_text())
    assert journal["state"] == "promoted" and journal["version"] == 2
    assert journal["decision"]["production"]["version"] == 1
    drift = json.loads((tmp_path / "monitoring" / "shop-als" / "drift.json").read_text())
    assert "alerts" in drift  # the second monitor's report, on version 2


def test_movielens(tmp_path: Path) -> None:
    write_movielens_sample(tmp_path / "data" / "raw" / "ml-100k")  # where the skipped fetch writes the data
    run_page("movielens.md", tmp_path, {"FOLDS": "1"})
    blend, als = (sorted(tmp_path.glob(f"runs/{m}/*/"))[-1] for m in ("blend", "als"))
    metrics = json.loads((blend / "eval" / "test" / "metrics.json").read_text())
    assert metrics["part"] == "test" and 0 <= metrics["headline"]["ndcg@10"]["value"] <= 1
    assert metrics["slices"]  # against the ALS baseline
    assert (blend / "eval" / "test" / "report.html").is_file()
    comparison = json.loads((tmp_path / "comparison.json").read_text())
    assert str(als.resolve()).rstrip("/") in json.dumps(comparison)
    explained = only("runs/twostageranker/*/explain/test/explain.json", tmp_path)
    assert json.loads(explained.read_text())


def test_sweep_postgres(tmp_path: Path, postgres_url: str) -> None:
    import optuna

    study = f"tutorial-{uuid.uuid4().hex[:8]}"
    env = {"STUDY_DB": postgres_url, "STUDY": study, "TRAINER": "default", "TRIALS": "4", "EPOCHS": "2"}
    try:
        run_page("sweep-postgres.md", tmp_path, env)
        trials = optuna.load_study(study_name=study, storage=postgres_url).get_trials()
        assert [t.state.name for t in trials] == ["COMPLETE"] * 4
        assert len({t.user_attrs.get("pid") for t in trials}) == 2  # both workers trained
    finally:
        optuna.delete_study(study_name=study, storage=postgres_url)
    best = json.loads((tmp_path / "runs" / "sweeps" / study / "best.json").read_text())
    assert best["storage"] == postgres_url and best["best"]["number"] in range(4)
    assert "test/ndcg@10" in best["refit"]["metrics"]
    assert "model=sasrec" in (tmp_path / "runs" / "sweeps" / study / "best_overrides.txt").read_text().split()


@pytest.mark.usefixtures("spark_available")
def test_scale_out(tmp_path: Path, s3_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> None:
    import boto3

    bucket = new_bucket(s3_endpoint, monkeypatch, "tutorial")  # moto's dummy AWS_* credentials go in the environment
    monkeypatch.delenv("SPARK_HOME", raising=False)  # the pip-installed pyspark's own jars
    run_page("scale-out.md", tmp_path, {"S3_ENDPOINT": s3_endpoint, "BUCKET": bucket, "GPUS": "2", "EPOCHS": "2"})
    pages = boto3.client("s3", endpoint_url=s3_endpoint).get_paginator("list_objects_v2").paginate(Bucket=bucket)
    keys = {o["Key"] for page in pages for o in page.get("Contents", [])}
    for folder in ("recsys/lake/synth", "recsys/splits/synth", "recsys/features/synth", "registry/shop-sasrec"):
        assert any(k.startswith(folder) for k in keys), f"nothing under s3://{bucket}/{folder}"
    lake = json.loads(next(tmp_path.glob(".cache/recsys/data/s3/*/recsys/lake/synth/manifest.json")).read_text())
    assert lake["config"]["engine"]["name"] == "spark"
    run = only("runs/sasrec/*/", tmp_path)
    config = (run / "config.yaml").read_text()
    assert "strategy: ddp" in config and "devices: 2" in config
    assert "registry/shop-sasrec/aliases/production.json" in keys
