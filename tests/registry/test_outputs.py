"""Which paths a command may write (claim, claim_file) and one writer at a time (lock)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

from recsys_cli.data.lake import recover, staged_version
from recsys_cli.errors import OutputError
from recsys_cli.registry import outputs
from recsys_cli.registry.outputs import claim, claim_container, claim_file, kind_of, lock, lock_file


def manifest(folder: Path, **content: object) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "manifest.json").write_text(json.dumps(content))
    return folder


def tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


# -- folders ----------------------------------------------------------------------------------------------------


def test_a_new_or_empty_folder_or_our_own_output_of_the_same_kind_may_be_replaced(tmp_path: Path) -> None:
    assert claim(tmp_path / "new" / "lake", "lake") == (tmp_path / "new" / "lake").resolve()
    (tmp_path / "empty").mkdir()
    claim(tmp_path / "empty", "split")
    claim(manifest(tmp_path / "mine", kind="features"), "features")


@pytest.mark.parametrize(
    ("content", "kind"),
    [
        ({"format_version": 1, "fingerprint": "ab", "source": "synth"}, "lake"),
        ({"protocol": {}, "folds": [], "lake": {}}, "split"),
        ({"split_manifest_sha256": "ab", "folds": []}, "features"),
    ],
)
def test_folders_written_before_kinds_are_recognised_by_their_manifest_keys(
    tmp_path: Path, content: dict[str, object], kind: str
) -> None:
    folder = manifest(tmp_path / "old", **content)
    assert kind_of(folder) == kind
    claim(folder, kind)
    other = "split" if kind != "split" else "lake"
    with pytest.raises(OutputError, match=f"not a {other} written by recsys: it holds a {kind}"):
        claim(folder, other)


@pytest.mark.parametrize(
    ("files", "kind"),
    [
        ({"metrics.json": "{}", "report.html": "<html>", "per_user.parquet": ""}, "evaluation"),
        ({"abtest.json": "{}", "config.yaml": ""}, "abtest"),
        ({"plan.json": "{}"}, "sweep"),
        ({"events.csv": "event_time,customer_id,sku,event,session\n", "users.csv": ""}, "synth"),
        ({"result.json": '{"experiment": {}, "passed": true, "checks": []}'}, "reproduction"),
        ({"config.yaml": "", "model/model.json": "{}"}, "run"),
    ],
)
def test_folders_without_a_manifest_are_recognised_by_what_they_hold(
    tmp_path: Path, files: dict[str, str], kind: str
) -> None:
    for name, text in files.items():
        (tmp_path / "old" / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "old" / name).write_text(text)
    assert kind_of(tmp_path / "old") == kind


def test_a_run_folder_is_not_an_evaluation_although_it_holds_metrics(tmp_path: Path) -> None:
    run = tmp_path / "run"
    (run / "model").mkdir(parents=True)
    for name in ("config.yaml", "metrics.json", "report.html"):
        (run / name).write_text("{}")
    with pytest.raises(OutputError, match="not an evaluation written by recsys: it holds a run"):
        claim(run, "evaluation")


def test_anything_else_is_refused_in_one_line_and_left_alone(tmp_path: Path) -> None:
    data = tmp_path / "data"
    (data / "raw").mkdir(parents=True)
    (data / "raw" / "events.csv").write_text("user_id,item_id\nu1,i1\n")
    before = tree(tmp_path)
    with pytest.raises(OutputError) as refused:
        claim(data, "lake")
    message = str(refused.value)
    assert message == (
        f"{data}: refusing to replace this folder (not a lake written by recsys: no manifest.json); "
        "choose a new or empty folder"
    )
    assert "\n" not in message and tree(tmp_path) == before


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("{not json", "its manifest.json is unreadable"),
        ('{"name": "someone else"}', "its manifest.json names no kind of recsys output"),
        ('{"kind": "split"}', "it holds a split written by recsys"),
    ],
)
def test_a_foreign_or_damaged_manifest_is_not_ours(tmp_path: Path, text: str, why: str) -> None:
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "manifest.json").write_text(text)
    with pytest.raises(OutputError, match=why):
        claim(tmp_path / "out", "lake")


def test_a_file_or_a_file_in_place_of_a_parent_is_refused(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(OutputError, match="refusing to replace a file with a folder"):
        claim(tmp_path / "notes.txt", "split")
    with pytest.raises(OutputError, match="notes.txt is a file, not a folder"):
        claim(tmp_path / "notes.txt" / "split", "split")


@pytest.mark.parametrize(
    ("output", "input_", "message"),
    [
        ("raw", "raw", "refusing to replace the input raw with a lake"),
        ("data", "data/raw/events.csv", "refusing to replace a folder that holds the input data/raw/events.csv"),
        ("raw/lake", "raw", "refusing to write a lake inside the input raw"),
    ],
)
def test_an_output_never_overlaps_an_input_even_when_it_is_our_own_kind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, output: str, input_: str, message: str
) -> None:
    monkeypatch.chdir(tmp_path)
    manifest(tmp_path / output, kind="lake")
    with pytest.raises(OutputError, match=message + r".*outputs never overlap inputs"):
        claim(output, "lake", [input_])


def test_an_overlap_through_a_symlink_is_seen(tmp_path: Path) -> None:
    (tmp_path / "raw").mkdir()
    (tmp_path / "alias").symlink_to(tmp_path / "raw")
    with pytest.raises(OutputError, match="refusing to replace the input"):
        claim(tmp_path / "alias", "lake", [tmp_path / "raw"])


@pytest.mark.parametrize(
    ("where", "reason"),
    [
        (".", "the current folder"),
        ("..", "a folder holding the current folder"),
        ("~", "the home folder"),
        ("/", "the filesystem root"),
    ],
)
def test_the_current_home_and_root_folders_are_never_outputs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, where: str, reason: str
) -> None:
    manifest(tmp_path / "home", kind="lake")  # even one that looks like ours
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.chdir(manifest(tmp_path / "work", kind="lake"))
    with pytest.raises(OutputError, match=f"refusing to replace {reason}"):
        claim(Path(where).expanduser(), "lake")


@pytest.mark.parametrize("marker", [".git", "pyproject.toml"])
def test_a_project_folder_is_never_an_output(tmp_path: Path, marker: str) -> None:
    project = manifest(tmp_path / "project", kind="lake")
    (project / marker).touch()
    with pytest.raises(OutputError, match=r"refusing to replace a project folder \(it holds .git or pyproject.toml\)"):
        claim(project, "lake")


def test_a_container_keeps_what_it_holds_but_never_lies_in_an_input_or_is_a_file(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    (runs / "notes.txt").parent.mkdir()
    (runs / "notes.txt").write_text("mine")
    assert claim_container(runs, "run", [tmp_path / "data" / "lake"]) == runs.resolve()
    claim_container(tmp_path, "run", [tmp_path / "data" / "lake"])  # holding an input is fine: nothing is replaced
    for inside in (tmp_path / "data" / "lake", tmp_path / "data" / "lake" / "runs"):
        with pytest.raises(OutputError, match="refusing to write runs inside the input"):
            claim_container(inside, "run", [tmp_path / "data" / "lake"])
    with pytest.raises(OutputError, match="cannot write runs here: it is a file, not a folder"):
        claim_container(runs / "notes.txt", "run")


# -- the shared swap ---------------------------------------------------------------------------------------------


def test_staged_version_refuses_a_foreign_folder_before_touching_it(tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "events.csv").write_text("u1,i1\n")
    with pytest.raises(OutputError), staged_version(raw, "split") as tmp:
        (tmp / "x").write_text("never")
    assert tree(tmp_path) == {"raw/events.csv": b"u1,i1\n"}


def test_staged_version_stamps_the_kind_so_the_next_run_may_replace_it(tmp_path: Path) -> None:
    out = tmp_path / "eval"
    for version in ("v1", "v2"):
        with staged_version(out, "evaluation") as tmp:
            (tmp / "metrics.json").write_text(version)
    assert json.loads((out / "manifest.json").read_text()) == {"kind": "evaluation"}
    assert (out / "metrics.json").read_text() == "v2"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["eval"]  # no staging folder, no lock file left


def test_recover_touches_only_its_own_staging_folders(tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    lake.mkdir()
    (tmp_path / ".lake.tmp-0123abcd").mkdir()  # ours: stale staging
    for name in (".lake.tmp-notours", ".lake.old-backup", ".lake.tmp-0123abcd5"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "keep.txt").write_text("mine")
    recover(lake)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        ".lake.old-backup",
        ".lake.tmp-0123abcd5",
        ".lake.tmp-notours",
        "lake",
    ]


# -- single files ------------------------------------------------------------------------------------------------


def test_a_single_file_output_never_replaces_an_input_or_writes_inside_one(tmp_path: Path) -> None:
    users = tmp_path / "users.csv"
    users.write_text("user_id\nu1\n")
    run = tmp_path / "run"
    (run / "model").mkdir(parents=True)
    with pytest.raises(OutputError, match="refusing to write a recommendations over the input"):
        claim_file(users, "recommendations", [users])
    with pytest.raises(OutputError, match="refusing to write a comparison inside the input"):
        claim_file(run / "model" / "c.json", "comparison", [run / "model"])
    assert users.read_text() == "user_id\nu1\n"


def test_an_existing_file_is_replaced_only_when_it_is_the_same_kind_of_output(tmp_path: Path) -> None:
    ours = tmp_path / "ours.json"
    ours.write_text(json.dumps({"kind": "comparison", "metric": "ndcg@10"}))
    legacy = tmp_path / "legacy.json"
    legacy.write_text(json.dumps({"metric": "ndcg@10", "comparisons": [], "runs": [], "correction": "holm"}))
    verdict = tmp_path / "result.json"
    verdict.write_text(json.dumps({"kind": "reproduction"}))
    notes = tmp_path / "notes.json"
    notes.write_text('{"todo": 1}')
    claim_file(ours, "comparison")
    claim_file(legacy, "comparison")
    for path, kind in ((verdict, "comparison"), (notes, "comparison"), (notes, "reproduction")):
        with pytest.raises(OutputError, match=f"refusing to replace this file \\(not a {kind} written by recsys\\)"):
            claim_file(path, kind)
    with pytest.raises(OutputError, match="refusing to replace a folder with a comparison file"):
        claim_file(tmp_path, "comparison")


def test_recommendation_files_are_ours_by_their_metadata_or_older_columns(tmp_path: Path) -> None:
    frame = pl.DataFrame({"user_id": ["u"], "item_id": ["i"], "rank": [1], "score": [0.5]})
    frame.write_parquet(tmp_path / "new.parquet", metadata={outputs.PARQUET_KIND_KEY: "recommendations"})
    frame.write_parquet(tmp_path / "old.parquet")
    frame.drop("score").write_parquet(tmp_path / "other.parquet")
    (tmp_path / "bytes.parquet").write_bytes(b"PAR1 nope")
    claim_file(tmp_path / "new.parquet", "recommendations")
    claim_file(tmp_path / "old.parquet", "recommendations")
    for name in ("other.parquet", "bytes.parquet"):
        with pytest.raises(OutputError, match="not a recommendations written by recsys"):
            claim_file(tmp_path / name, "recommendations")


# -- the lock ----------------------------------------------------------------------------------------------------

HOLDER = """
import sys
from recsys_cli.registry.outputs import lock
with lock(sys.argv[1]):
    print("held", flush=True)
    sys.stdin.read()
"""


def hold(path: Path) -> subprocess.Popen[str]:
    """Another process holding `path`'s lock until its stdin is closed."""
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(path)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None and proc.stdout.readline() == "held\n"
    return proc


def release(proc: subprocess.Popen[str]) -> None:
    assert proc.stdin is not None
    proc.stdin.close()
    assert proc.wait() == 0


def test_a_second_process_gives_up_after_the_timeout_naming_the_holder(tmp_path: Path) -> None:
    out = tmp_path / "lake"
    holder = hold(out)
    try:
        assert lock_file(out).read_text().strip() == str(holder.pid)
        with pytest.raises(OutputError) as refused, lock(out, timeout_s=0):
            pass
        assert str(refused.value) == (
            f"{out}: another recsys process (pid {holder.pid}) is writing it; gave up after 0 s "
            "($RECSYS_LOCK_TIMEOUT); run again when it has finished"
        )
    finally:
        release(holder)
    with lock(out, timeout_s=0):  # free again once the holder is gone
        assert lock_file(out).read_text().strip() == str(os.getpid())
    assert not lock_file(out).exists()


def test_the_lock_is_reentrant_in_one_thread_and_lives_beside_the_folder(tmp_path: Path) -> None:
    out = tmp_path / "data" / "lake"
    with lock(out), lock(tmp_path / "data" / ".." / "data" / "lake"):
        assert lock_file(out) == tmp_path / "data" / ".lake.lock"
        assert lock_file(out).exists()
    assert not lock_file(out).exists()


@pytest.mark.parametrize("value", ["abc", "-1", "nan"])
def test_a_bad_timeout_is_one_line(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("RECSYS_LOCK_TIMEOUT", value)
    with pytest.raises(OutputError, match=r"\$RECSYS_LOCK_TIMEOUT: expected a number of seconds >= 0"):
        outputs.lock_timeout()
