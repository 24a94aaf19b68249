"""scripts/bench_engines.py's pure helpers: the plan of cells and their overrides, when a
cell counts as measured, throughput per core, and where a Spark step's time went as read
from an event log. No Spark, no CLI run."""

from __future__ import annotations

import json
from pathlib import Path
from types import ModuleType

import pytest

from tests.scripts import load_script


@pytest.fixture(scope="module")
def be() -> ModuleType:
    return load_script("bench_engines", "bench_engines_under_test")


def test_sizes_are_labelled_in_events(be: ModuleType) -> None:
    assert [be.size_label(n) for n in (10_000_000, 50_000_000, 20_000, 1234)] == ["10M", "50M", "20k", "1234"]


def test_the_plan_runs_each_engine_s_steps_in_pipeline_order(be: ModuleType) -> None:
    cells = be.plan(["10M", "50M"], ["polars", "spark"], ["features", "ingest", "split"])
    assert [c.key for c in cells[:4]] == [
        "10M/polars/ingest",
        "10M/polars/split",
        "10M/polars/features",
        "10M/spark/ingest",
    ]
    assert len(cells) == 12 and cells[-1].key == "50M/spark/features"


def test_each_engine_has_its_own_data_folder_and_the_raw_files_are_shared(be: ModuleType) -> None:
    raw = Path("/in/raw")
    polars = be.overrides("features", "polars", Path("/w/polars"), raw, "local[2]")
    spark = be.overrides("ingest", "spark", Path("/w/spark"), raw, "local[2]")
    assert polars == ["paths.data_dir=/w/polars", "paths.raw_dir=/in/raw", "engine=polars", "split=global_temporal",
                      "features=default"]  # fmt: skip
    assert "paths.raw_dir=/in/raw" in spark and "engine.master='local[2]'" in spark  # brackets quoted for Hydra
    assert be.output_dir("split", Path("/w")) == Path("/w/splits/synth/global_temporal-engagement")
    assert be.previous("ingest") is None and be.previous("features") == "split"


def test_a_spark_cell_that_started_no_jvm_is_not_measured(be: ModuleType) -> None:
    assert be.is_measured({"rc": 0, "engine": "polars"})
    assert be.is_measured({"rc": 0, "engine": "spark", "spark_ran": True})
    assert not be.is_measured({"rc": 0, "engine": "spark", "spark_ran": False})  # the engine not built yet
    assert not be.is_measured({"rc": 1, "engine": "polars"})
    assert not be.is_measured(None)


def test_throughput_per_core_divides_events_by_cpu_seconds(be: ModuleType) -> None:
    t = be.throughput({"wall_s": 10.0, "cpu_s": 16.0}, 8_000_000)
    assert t == {"events_per_s": 800_000.0, "events_per_cpu_s": 500_000.0, "cores_busy": 1.6}


def test_overlapping_jobs_are_counted_once(be: ModuleType) -> None:
    assert be.covered_seconds([(0.0, 2.0), (1.0, 3.0), (5.0, 6.0), (5.5, 5.8)]) == pytest.approx(4.0)
    assert be.covered_seconds([]) == 0.0


def event_log() -> list[str]:
    """A minimal Spark event log: one SQL execution with two jobs, three stages."""
    events = [
        {"Event": "SparkListenerApplicationStart", "Timestamp": 100_000},
        {"Event": "org.apache.spark.sql.execution.ui.SparkListenerSQLExecutionStart", "executionId": 0,
         "description": "parquet at ingest.py:10"},
        {"Event": "SparkListenerJobStart", "Job ID": 0, "Submission Time": 105_000, "Stage IDs": [0, 1],
         "Properties": {"spark.sql.execution.id": "0"}},
        {"Event": "SparkListenerTaskEnd", "Stage ID": 0, "Task Metrics": {
            "Executor Run Time": 1500, "Executor CPU Time": 500_000_000, "JVM GC Time": 100,
            "Shuffle Write Metrics": {"Shuffle Bytes Written": 2 << 20}, "Input Metrics": {"Bytes Read": 4 << 20}}},
        {"Event": "SparkListenerTaskEnd", "Stage ID": 1, "Task Metrics": {
            "Executor Run Time": 2000, "Shuffle Read Metrics": {"Local Bytes Read": 1 << 20, "Remote Bytes Read": 0}}},
        {"Event": "SparkListenerStageCompleted", "Stage Info": {"Stage ID": 0, "Stage Name": "parquet at ingest.py:10",
         "Number of Tasks": 1, "Submission Time": 105_000, "Completion Time": 107_000}},
        {"Event": "SparkListenerStageCompleted", "Stage Info": {"Stage ID": 1, "Stage Name": "applyInArrow at x.py:5",
         "Number of Tasks": 1, "Submission Time": 107_000, "Completion Time": 109_000}},
        {"Event": "SparkListenerJobEnd", "Job ID": 0, "Completion Time": 109_000},
        {"Event": "SparkListenerJobStart", "Job ID": 1, "Submission Time": 110_000, "Stage IDs": [2],
         "Properties": {"callSite.short": "collect at y.py:3"}},
        {"Event": "SparkListenerStageCompleted", "Stage Info": {"Stage ID": 2, "Stage Name": "parquet at ingest.py:10",
         "Number of Tasks": 3, "Submission Time": 110_000, "Completion Time": 111_000}},
        {"Event": "SparkListenerJobEnd", "Job ID": 1, "Completion Time": 111_000},
        {"Event": "SparkListenerApplicationEnd", "Timestamp": 112_000},
    ]  # fmt: skip
    return [json.dumps(e) for e in events]


def test_the_event_log_gives_jobs_stages_and_task_totals(be: ModuleType) -> None:
    log = be.parse_event_log(event_log())
    assert log["app_start"] == 100.0 and log["app_end"] == 112.0
    assert [j["description"] for j in log["jobs"]] == ["parquet at ingest.py:10", "collect at y.py:3"]
    assert log["jobs_busy_s"] == pytest.approx(5.0)
    first = log["stages"][0]
    assert first["run_s"] == 1.5 and first["jvm_cpu_s"] == 0.5 and first["gc_s"] == 0.1
    assert first["shuffle_write_mib"] == 2.0 and first["input_mib"] == 4.0
    assert log["stages"][1]["shuffle_read_mib"] == 1.0
    groups = be.stage_groups(log["stages"])
    assert [(g["name"], g["stages"], g["tasks"], g["wall_s"]) for g in groups] == [
        ("parquet at ingest.py:10", 2, 4, 3.0),
        ("applyInArrow at x.py:5", 1, 1, 2.0),
    ]


def test_a_spark_step_s_wall_time_is_split_on_its_own_clock(be: ModuleType) -> None:
    log = be.parse_event_log(event_log())
    cell = {"started_epoch": 97.0, "wall_s": 16.5}  # exits at 113.5
    b = be.spark_breakdown(cell, log, {"start_s": 6.0, "stop_s": 0.4})
    assert b["to_context_s"] == pytest.approx(3.0)
    assert b["to_first_job_s"] == pytest.approx(5.0)
    assert b["jobs_s"] == pytest.approx(5.0)
    assert b["between_jobs_s"] == pytest.approx(1.0)
    assert b["after_jobs_s"] == pytest.approx(2.5)
    parts = ("to_context_s", "to_first_job_s", "jobs_s", "between_jobs_s", "after_jobs_s")
    assert sum(b[k] for k in parts) == pytest.approx(cell["wall_s"])
    assert b["probe_session_start_s"] == 6.0 and b["tasks"] == 5


def test_without_an_event_log_only_counts_are_given(be: ModuleType) -> None:
    b = be.spark_breakdown({"started_epoch": 0.0, "wall_s": 3.0}, None, None)
    assert b["jobs"] == 0 and "jobs_s" not in b


def test_summary_rows_give_spark_s_ratio_to_polars_and_the_memory_scaling(be: ModuleType) -> None:
    def cell(engine: str, wall: float, cpu: float, rss: float, jvm: bool = True) -> dict[str, object]:
        return {"rc": 0, "engine": engine, "wall_s": wall, "cpu_s": cpu, "peak_rss_mib": rss, "spark_ran": jvm}

    results = {
        "datasets": {"10M": {"rows": {"events": 10_000_000}}, "50M": {"rows": {"events": 50_000_000}}},
        "cells": {
            "10M/polars/ingest": cell("polars", 20.0, 25.0, 1000.0),
            "10M/spark/ingest": cell("spark", 60.0, 100.0, 3000.0),
            "50M/polars/ingest": cell("polars", 100.0, 125.0, 1100.0),
            "50M/spark/ingest": cell("spark", 1.0, 1.0, 1.0, jvm=False),
        },
    }
    rows = {(r["size"], r["engine"]): r for r in be.summary_rows(results)}
    spark = rows[("10M", "spark")]
    assert spark["wall_over_polars"] == 3.0 and spark["cpu_over_polars"] == 4.0
    assert spark["events_per_cpu_s"] == 100_000.0
    assert not rows[("50M", "spark")]["measured"]
    scaling = be.memory_scaling(list(rows.values()), "10M", "50M")
    assert scaling == [{"engine": "polars", "step": "ingest", "10M": 1000.0, "50M": 1100.0, "ratio": 1.1}]


def test_children_run_with_the_cli_s_thread_defaults_and_spark_s_event_log(
    be: ModuleType, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    env = be.child_env(tmp_path / "ev", code_dir=tmp_path)
    assert "OMP_NUM_THREADS" not in env and env["PYTHONPATH"] == str(tmp_path)
    assert env["PYSPARK_SUBMIT_ARGS"].endswith("pyspark-shell")
    assert "--conf spark.eventLog.enabled=true" in env["PYSPARK_SUBMIT_ARGS"]
    assert "PYSPARK_SUBMIT_ARGS" not in be.child_env(None)


def test_stage_names_drop_the_folder_the_package_ran_from(be: ModuleType) -> None:
    name = "toArrow at /w/code/3abd99617378/recsys_cli/spark/split.py:88"
    assert be.short_name(name) == "toArrow at recsys_cli/spark/split.py:88"
    assert be.short_name("parquet at NativeMethodAccessorImpl.java:0") == "parquet at NativeMethodAccessorImpl.java:0"


def test_the_markdown_report_has_a_table_per_size_and_spark_s_breakdown(be: ModuleType) -> None:
    lines = event_log()
    spark = {"rc": 0, "engine": "spark", "spark_ran": True, "wall_s": 16.5, "cpu_s": 20.0, "peak_rss_mib": 900.0,
             "peak_pss_mib": 800.0, "load_before": [1.0], "started_epoch": 97.0,
             "spark_log": be.parse_event_log(lines)}  # fmt: skip
    polars = {"rc": 0, "engine": "polars", "wall_s": 5.5, "cpu_s": 10.0, "peak_rss_mib": 300.0, "peak_pss_mib": 290.0,
              "load_before": [0.5]}  # fmt: skip
    results = {
        "datasets": {"10M": {"rows": {"events": 10_000_000}}},
        "cells": {"10M/polars/ingest": polars, "10M/spark/ingest": spark},
        "session_probe": {"start_s": 4.0, "stop_s": 0.3},
    }
    text = be.markdown_report(results)
    assert "**10M events**" in text
    assert "| ingest | spark | 16.5 | 20.0 | 606,061 | 500,000 | 900 (800) | 3.00x, 2.00x | 1.0 |" in text
    assert "| 10M/spark/ingest | 16.5 | 3.0 | 5.0 | 5.0 | 1.0 | 2.5 | 2 / 3 / 5 |" in text
    assert "`parquet at ingest.py:10` 3.0" in text
