"""What "both engines wrote the same output" means, checked once for every step:
the same files (Parquet tables, JSON), each Parquet table with the same schema
and the same rows (floats within 1e-9 relative; row order compared as the polars
engine wrote it only where `ordered`), and manifests equal but for what must
differ between two runs (times, the engine, hashes of files whose bytes encode
the run)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import polars as pl
from polars.testing import assert_frame_equal

RUN_KEYS = frozenset({"created_at", "ingested_at", "engine", "sha256", "manifest_sha256", "seal", "path"})


def files(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


def assert_same_table(a: pl.DataFrame, b: pl.DataFrame, name: str, ordered: bool = False) -> None:
    assert a.schema == b.schema, f"{name}: schema {a.schema} != {b.schema}"
    if not ordered:
        keys = [c for c, t in a.schema.items() if not t.is_nested()]
        a, b = a.sort(keys, nulls_last=True), b.sort(keys, nulls_last=True)
    assert_frame_equal(a, b, check_exact=False, rel_tol=1e-9, abs_tol=0.0)


def strip(value: Any, drop: Iterable[str] = RUN_KEYS) -> Any:
    """A manifest without the keys that differ from run to run."""
    skip = frozenset(drop)
    if isinstance(value, dict):
        return {k: strip(v, skip) for k, v in value.items() if k not in skip}
    if isinstance(value, list):
        return [strip(v, skip) for v in value]
    return value


def assert_same_output(
    polars_dir: Path, spark_dir: Path, ordered: Iterable[str] = (), drop: Iterable[str] = ()
) -> None:
    """Every file of two output folders (the published versions) matches.

    `ordered`: relative paths of tables whose row order is part of the format.
    `drop`: further manifest keys that legitimately differ."""
    left, right = files(polars_dir), files(spark_dir)
    only = sorted(set(left) - set(right)), sorted(set(right) - set(left))
    assert left == right, f"files differ: only polars {only[0]}, only spark {only[1]}"
    keep = set(ordered)
    for rel in left:
        a, b = polars_dir / rel, spark_dir / rel
        if rel.endswith(".parquet"):
            assert_same_table(pl.read_parquet(a), pl.read_parquet(b), rel, ordered=rel in keep)
        elif rel.endswith(".json"):
            ja, jb = json.loads(a.read_text()), json.loads(b.read_text())
            skip = RUN_KEYS | set(drop)
            assert strip(ja, skip) == strip(jb, skip), f"{rel} differs"
        else:
            assert a.read_bytes() == b.read_bytes(), f"{rel} differs"
