"""scripts/bench_movielens.py: grids, model selection and the bars, on hand-made results."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import polars as pl
import pytest

from tests.scripts import load_script


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    return load_script("bench_movielens")


def test_grid_points_are_the_product_in_declared_order(bench: ModuleType) -> None:
    spec = bench.ModelSpec("m", "item_knn", bench.BASELINE, grid={"k": [50, 200], "shrink": [0.0, 10.0]})
    labels = [label for label, _ in spec.points()]
    assert labels == ["k=50,shrink=0.0", "k=50,shrink=10.0", "k=200,shrink=0.0", "k=200,shrink=10.0"]
    assert spec.points()[1][1] == ("model.k=50", "model.shrink=10.0")
    assert bench.ModelSpec("p", "popularity", bench.BASELINE).points() == [("defaults", ())]


def test_every_declared_grid_and_fixed_key_exists_in_its_yaml(bench: ModuleType) -> None:
    """A grid key the yaml lacks would skip the model; models whose yaml is still
    being written are skipped with a note, never an error."""
    skipped: dict[str, str] = {}
    specs = bench.select_models("all", skipped)
    assert all("has no" not in reason for reason in skipped.values()), skipped
    assert {"popularity", "recent_popularity_7d", "item_knn", "ease", "bpr_mf"} <= {s.name for s in specs}


def test_model_groups_expand_and_unknown_names_are_refused(bench: ModuleType) -> None:
    specs = bench.select_models("baselines,bpr_mf,ease", {})
    names = [s.name for s in specs]
    assert names[:5] == ["popularity", "recent_popularity_7d", "recent_popularity_30d", "item_knn", "ease"]
    assert names[-1] == "bpr_mf" and names.count("ease") == 1
    with pytest.raises(SystemExit):
        bench.select_models("nope", {})


REPORTED = ("ndcg@10", "recall@10", "hitrate@10", "mrr@10", "coverage@10")


def fold_result(tmp_path: Path, fold: str, name: str, values: np.ndarray, val: float) -> dict[str, Any]:
    """One model's result on one fold, with its per-user file (rows shuffled: pairing
    must go by user_id, not by row order)."""
    path = tmp_path / f"{fold}-{name}.parquet"
    users = [f"u{i}" for i in range(values.size)]
    pl.DataFrame({"user_id": users, "ndcg@10": values}).sample(
        fraction=1.0, shuffle=True, seed=len(name)
    ).write_parquet(path)
    metrics = {m: float(values.mean()) if m == "ndcg@10" else 0.0 for m in REPORTED}
    return {"test": metrics, "val": {**metrics, "ndcg@10": val}, "users": values.size, "per_user": str(path)}


def protocol(bench: ModuleType, tmp_path: Path, effect: float) -> dict[str, Any]:
    rng = np.random.default_rng(0)
    folds: dict[str, dict[str, Any]] = {}
    for f in ("fold-0", "fold-1"):
        base = rng.beta(1, 6, size=150)
        folds[f] = {
            "popularity": fold_result(tmp_path, f, "popularity", base * 0.8, 0.10),
            "ease": fold_result(tmp_path, f, "ease", base, 0.05),  # worse on validation, best on test
            "bpr_mf": fold_result(tmp_path, f, "bpr_mf", np.clip(base * effect + 0.01, 0, 1), 0.2),
        }
    mean = {n: bench.fold_mean(folds, n) for n in ("popularity", "ease", "bpr_mf")}
    return {"folds": folds, "mean": mean, "failed": {}}


def test_the_bar_is_against_the_strongest_baseline_and_needs_the_interval_above_zero(
    bench: ModuleType, tmp_path: Path
) -> None:
    kinds = {"popularity": bench.BASELINE, "ease": bench.BASELINE, "bpr_mf": bench.OURS}
    strong = bench.compare(protocol(bench, tmp_path, 1.6), kinds, 2000)
    bench.judge("p2", strong)
    assert strong["best_baseline"] == "ease" and strong["best_baseline_by_validation"] == "popularity"
    row = strong["models"]["bpr_mf"]
    assert row["bootstrap"]["n"] == 300  # paired on (fold, user) across both folds
    assert row["ratio"] > 1.25 and row["bootstrap"]["low"] > 0 and row["passes"]
    assert row["bootstrap"]["mean_b"] == pytest.approx(strong["models"]["bpr_mf"]["baseline_ndcg@10"], rel=0.05)

    weak = bench.compare(protocol(bench, tmp_path, 1.1), kinds, 2000)
    bench.judge("p2", weak)
    assert not weak["models"]["bpr_mf"]["passes"]
    bench.judge("p3", weak)
    assert weak["models"]["bpr_mf"]["bar"].startswith("ratio >= 2.5") and not weak["models"]["bpr_mf"]["passes"]
