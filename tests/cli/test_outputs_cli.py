"""No command deletes what is not its own output, and two writers of one folder
never both succeed: issue 14's data-loss examples through the real CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from recsys_cli.cli import app

runner = CliRunner()


def invoke(*args: str) -> tuple[int, list[str]]:
    """Exit code and the non-blank lines the command printed."""
    result = runner.invoke(app, list(args))
    return result.exit_code, [line for line in result.output.splitlines() if line.strip()]


def snapshot(root: Path) -> dict[str, tuple[int, int]]:
    """Every file under `root` with its size and modification time: any change shows."""
    return {p.relative_to(root).as_posix(): (p.stat().st_size, p.stat().st_mtime_ns) for p in root.rglob("*")}


def refused(args: list[str], root: Path, message: str) -> None:
    before = snapshot(root)
    code, lines = invoke(*args)
    assert code == 1 and len(lines) == 1, lines
    assert lines[0].startswith("error: ") and message in lines[0], lines
    assert snapshot(root) == before


# -- the examples, on the small synthetic shop (data at `lake`) ------------------------------------------


def test_ingest_into_the_data_folder_or_the_raw_folder_deletes_nothing(prepared: Path) -> None:
    data, root = f"paths.data_dir={prepared}", prepared  # raw/, lake/, splits/ and features/
    refused(["ingest", data, f"lake_dir={root}"], root, "refusing to replace a folder that holds the input")
    refused(["ingest", data, f"lake_dir={root / 'raw' / 'synth'}"], root, "refusing to replace the input")
    refused(["ingest", data, f"lake_dir={root / 'raw'}"], root, "refusing to replace a folder that holds the input")
    refused(["ingest", data, f"lake_dir={root / 'splits'}"], root, "not a lake written by recsys: no manifest.json")
    (split,) = (root / "splits" / "synth").iterdir()
    refused(["ingest", data, f"lake_dir={split}"], root, "not a lake written by recsys: it holds a split")
    (root / "raw" / "generic").mkdir()
    (root / "raw" / "generic" / "events.csv").write_text("user_id,item_id,event_type,ts\nu,i,view,2026-01-01\n")
    lake = root / "lake" / "synth"
    message = "refusing to replace the lake of source 'synth' with source 'generic'"
    for append in ([], ["--append"]):
        refused(["ingest", data, "data=generic", f"lake_dir={lake}", *append], root, message)


def test_ingest_into_the_current_folder_is_refused(lake: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(lake)
    refused(["ingest", "paths.data_dir=.", "lake_dir=."], lake, ".: refusing to replace the current folder")


def test_split_into_the_raw_folder_or_the_lake_is_refused_and_a_rerun_replaces_its_own(lake: Path) -> None:
    data = f"paths.data_dir={lake}"
    refused(["split", data, f"split_dir={lake / 'raw'}"], lake, "not a split written by recsys: no manifest.json")
    refused(["split", data, f"split_dir={lake / 'lake' / 'synth'}"], lake, "refusing to replace the input")
    refused(["split", data, f"split_dir={lake / 'lake'}"], lake, "refusing to replace a folder that holds the input")
    out = lake / "my-split"
    for _ in range(2):
        code, lines = invoke("split", data, f"split_dir={out}")
        assert code == 0, lines
    assert json.loads((out / "manifest.json").read_text())["kind"] == "split"
    refused(["features", data, f"split_dir={out}", f"features_dir={out}"], lake, "refusing to replace the input")


def test_runs_are_never_written_into_the_data_they_are_trained_on(prepared: Path) -> None:
    data = f"paths.data_dir={prepared}"
    for inside in (prepared / "raw" / "synth", prepared / "lake" / "synth"):
        refused(["train", data, "model=popularity", f"runs_dir={inside}"], prepared, "refusing to write runs inside")


def test_synth_never_writes_over_someone_elses_export(tmp_path: Path) -> None:
    export = tmp_path / "export"
    export.mkdir()
    (export / "events.csv").write_text("user_id,item_id,event_type,ts\nu1,i1,view,2026-01-01T00:00:00Z\n")
    refused(["datasets", "synth", f"data.path={export}"], tmp_path, "not a synth written by recsys: no manifest.json")


def test_compare_never_writes_over_or_into_a_run(tmp_path: Path) -> None:
    runs = [tmp_path / "runs" / "ease" / name for name in ("a", "b")]
    for run in runs:
        (run / "model").mkdir(parents=True)
        (run / "config.yaml").write_text("fold: fold-0\n")
    compare = ["compare", *map(str, runs), "--out"]
    refused([*compare, str(runs[0])], tmp_path, "refusing to write a comparison over the input")
    refused([*compare, str(tmp_path / "runs")], tmp_path, "refusing to replace a folder with a comparison file")
    refused([*compare, str(runs[0] / "c.json")], tmp_path, "refusing to write a comparison inside the input")


# -- one writer at a time: real processes on a tiny generic log --------------------------------------------------

HOLDER = """
import sys
from recsys_cli.registry.outputs import lock
with lock(sys.argv[1]):
    print("held", flush=True)
    sys.stdin.read()
"""


def write_events(folder: Path, name: str, day: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    rows = [f"u{day}{n},i{n},view,2026-01-{day:02d}T1{n}:00:00Z" for n in range(3)]
    (folder / name).write_text("user_id,item_id,event_type,ts\n" + "\n".join(rows) + "\n")


def ingest_cmd(root: Path, raw: Path, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "recsys_cli",
        "ingest",
        "data=generic",
        f"paths.data_dir={root}",
        f"data.path={raw}",
        *extra,
    ]


def start(cmd: list[str], timeout_s: int) -> subprocess.Popen[str]:
    env = {**os.environ, "RECSYS_LOCK_TIMEOUT": str(timeout_s), "COLUMNS": "200"}
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def hold(path: Path) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(path)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None and proc.stdout.readline() == "held\n"
    return proc


def waiting(proc: subprocess.Popen[str], holder: subprocess.Popen[str]) -> str:
    """Read `proc`'s stderr until it says it waits for the holder (or it ends)."""
    assert proc.stderr is not None
    seen = ""
    for line in proc.stderr:
        seen += line
        if f"waiting for pid {holder.pid}" in line:
            return seen
    raise AssertionError(f"never waited: {seen}")


def finish(proc: subprocess.Popen[str], seen: str = "") -> tuple[int, str]:
    out, err = proc.communicate(timeout=300)
    return proc.returncode, seen + err + out


def release(holder: subprocess.Popen[str]) -> None:
    assert holder.stdin is not None
    holder.stdin.close()
    assert holder.wait() == 0


@pytest.fixture
def shop(tmp_path: Path) -> Path:
    """A lake of one event file (three rows) at shop/lake/generic."""
    write_events(tmp_path / "raw0", "events-1.csv", day=1)
    result = subprocess.run(ingest_cmd(tmp_path, tmp_path / "raw0"), capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return tmp_path


def lake_events(root: Path) -> int:
    return int(json.loads((root / "lake" / "generic" / "manifest.json").read_text())["rows"]["events"])


def test_two_appends_at_once_queue_and_both_files_land_in_the_lake(shop: Path) -> None:
    for folder, name, day in (("raw-a", "events-2.csv", 2), ("raw-b", "events-3.csv", 3)):
        write_events(shop / folder, "events-1.csv", day=1)  # the file already in the lake
        write_events(shop / folder, name, day=day)
    holder = hold(shop / "lake" / "generic")
    procs = [start(ingest_cmd(shop, shop / f, "--append"), timeout_s=300) for f in ("raw-a", "raw-b")]
    seen = [waiting(p, holder) for p in procs]  # both are queued behind the holder...
    release(holder)  # ...then run one after the other
    for proc, text in zip(procs, seen, strict=True):
        code, output = finish(proc, text)
        assert code == 0 and "Traceback" not in output, output
    manifest = json.loads((shop / "lake" / "generic" / "manifest.json").read_text())
    assert sorted(Path(i["path"]).name for i in manifest["inputs"]) == ["events-1.csv", "events-2.csv", "events-3.csv"]
    assert lake_events(shop) == 9 and manifest["run"] == 3


def test_a_writer_that_waits_too_long_gives_up_in_one_line_and_changes_nothing(shop: Path) -> None:
    write_events(shop / "raw0", "events-2.csv", day=2)
    before = snapshot(shop / "lake")
    holder = hold(shop / "lake" / "generic")
    try:
        code, output = finish(start(ingest_cmd(shop, shop / "raw0", "--append"), timeout_s=0))
    finally:
        release(holder)
    lines = [line for line in output.splitlines() if line.strip() and "waiting for" not in line]
    assert code == 1 and len(lines) == 1, output
    assert f"another recsys process (pid {holder.pid}) is writing it; gave up after 0 s" in lines[0]
    assert snapshot(shop / "lake") == before and lake_events(shop) == 3


def test_two_plain_ingests_at_once_both_end_cleanly(shop: Path) -> None:
    write_events(shop / "raw0", "events-2.csv", day=2)
    holder = hold(shop / "lake" / "generic")
    procs = [start(ingest_cmd(shop, shop / "raw0"), timeout_s=300) for _ in range(2)]
    seen = [waiting(p, holder) for p in procs]
    release(holder)
    outputs = [finish(p, s) for p, s in zip(procs, seen, strict=True)]
    assert all(code == 0 and "Traceback" not in out for code, out in outputs), outputs
    assert sum("lake written" in out for _, out in outputs) == 1  # the second found it up to date
    assert sum("already up to date" in out for _, out in outputs) == 1
    assert lake_events(shop) == 6
    assert sorted(p.name for p in (shop / "lake").iterdir()) == ["generic"]  # no staging folder or lock left
