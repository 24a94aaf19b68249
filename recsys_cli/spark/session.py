"""The Spark session of one command: built from `engine` (conf/engine/spark.yaml),
stopped when the command ends, and shared when a session is already running in
this process (tests, a notebook)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, cast

from recsys_cli.errors import ConfigError

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

MIN_JAVA = 17
# Settings every recsys session needs; `engine.conf` may add to them but the time zone
# stays UTC, or Spark would shift the lake's UTC timestamps into the machine's zone.
BASE_CONF: dict[str, str] = {
    "spark.sql.session.timeZone": "UTC",
    "spark.sql.execution.arrow.pyspark.enabled": "true",
    "spark.ui.enabled": "false",
    "spark.ui.showConsoleProgress": "false",
    # Adaptive execution merges the small shuffle partitions of a small input.
    "spark.sql.adaptive.enabled": "true",
    # Timestamps written as Parquet's microsecond type, which Polars reads as the
    # lake's Datetime("us", "UTC") (Spark's default, INT96, is a legacy encoding).
    "spark.sql.parquet.outputTimestampType": "TIMESTAMP_MICROS",
}
FIXED = ("spark.sql.session.timeZone",)


def spark_settings(cfg: Any, command: str) -> dict[str, Any] | None:
    """The `engine` group of a composed config when it names Spark, as a plain
    mapping; None for polars (also when the config has no engine group, as configs
    composed for other commands do). Imports nothing of Spark."""
    from omegaconf import OmegaConf

    engine = cfg.get("engine")
    if engine is None or engine.name == "polars":
        return None
    if engine.name != "spark":
        raise ConfigError(f"engine = {engine.name}: recsys {command} runs on polars or spark")
    return cast(dict[str, Any], OmegaConf.to_container(engine, resolve=True))


def java_major(java: str | None = None) -> int | None:
    """The major version of the `java` Spark would start (JAVA_HOME's first), None without one."""
    home = os.environ.get("JAVA_HOME")
    java = java or (os.path.join(home, "bin", "java") if home else shutil.which("java"))
    if not java or not os.path.exists(java):
        return None
    try:
        out = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=30).stderr
    except (OSError, subprocess.SubprocessError):
        return None
    for token in out.split():
        token = token.strip('"')
        if token[:1].isdigit():
            head = token.split(".")[0].split("-")[0].split("+")[0]
            major = int(head) if head.isdigit() else None
            return int(token.split(".")[1]) if major == 1 else major
    return None


def require_spark() -> None:
    """engine=spark's two prerequisites, refused in one line each when missing."""
    try:
        import pyspark  # noqa: F401
    except ImportError:
        raise ConfigError("engine=spark needs pyspark: pip install 'recsys-cli[spark]' (and Java 17+)") from None
    major = java_major()
    if major is None:
        raise ConfigError("engine=spark needs Java 17 or newer, and none was found (set JAVA_HOME or put java on PATH)")
    if major < MIN_JAVA:
        raise ConfigError(f"engine=spark needs Java {MIN_JAVA} or newer; the java found is version {major}")


def settings(engine: Mapping[str, Any]) -> dict[str, str]:
    """The session's settings: ours, then the config's `engine.conf` (never the time zone)."""
    extra = {str(k): str(v) for k, v in (engine.get("conf") or {}).items()}
    for key in FIXED:
        if key in extra and extra[key] != BASE_CONF[key]:
            raise ConfigError(f"engine.conf.{key} = {extra[key]}: recsys sessions run in UTC, as the lake's timestamps")
    return {**BASE_CONF, **extra}


@contextmanager
def spark_session(engine: Mapping[str, Any]) -> Iterator[SparkSession]:
    """A session on `engine.master` for the length of the block.

    The workers must import this package and Polars: they run the interpreter that
    runs this command unless PYSPARK_PYTHON names another (on a cluster, a Python
    with recsys installed at the same path on every node)."""
    require_spark()
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    if str(engine["master"]).startswith("local"):
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")  # one machine: no network interface needed
    # pyspark warns on pandas 3 for its pandas UDFs; recsys exchanges Arrow only.
    warnings.filterwarnings("ignore", message="PySpark does not yet fully support pandas", category=FutureWarning)
    from pyspark.sql import SparkSession

    active = SparkSession.getActiveSession()
    if active is not None:  # a caller's session (a test's, a notebook's): used, not stopped
        yield active
        return
    builder = SparkSession.builder.master(str(engine["master"])).appName("recsys")
    for key, value in settings(engine).items():
        builder = builder.config(key, value)
    session = builder.getOrCreate()
    session.sparkContext.setLogLevel("ERROR")
    try:
        yield session
    finally:
        session.stop()


def buckets(rows: int, engine: Mapping[str, Any]) -> int:
    """How many shards `rows` rows make at `engine.rows_per_task` rows each (at least one)."""
    per = int(engine.get("rows_per_task") or 1_000_000)
    return max(1, -(-rows // per))
