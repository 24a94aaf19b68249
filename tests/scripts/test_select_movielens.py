"""scripts/select_movielens.py: the widened split keeps the protocol's own folds and
adds earlier ones, only validation windows are fitted, NDCG@10 is pooled over the
windows' users, and the model with the higher mean over seeds is chosen."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType

import hydra
import polars as pl
import pytest

from recsys_cli.config import compose
from recsys_cli.data.schema import EVENTS_SCHEMA, Col
from tests.scripts import load_script
from tests.scripts.test_bench_movielens import stub_fit


@pytest.fixture(scope="module")
def sel() -> ModuleType:
    return load_script("select_movielens")


def _folds(module: ModuleType, protocol: object, events: pl.LazyFrame) -> list[tuple[datetime, ...]]:
    cfg = compose("split", module.bench.overrides_for("split", Path("unused"), protocol))
    splitter = hydra.utils.instantiate(cfg.split)
    return [(f.val_start, f.test_start, f.test_end) for f in splitter.folds(events)]


def test_the_widened_split_ends_with_the_protocols_own_folds(sel: ModuleType) -> None:
    """Windows are counted back from the last event, so the three earlier folds come
    first and the protocol's four follow unchanged; its split folder is another."""
    start = datetime(2026, 1, 1, tzinfo=UTC)
    days = [start + timedelta(days=d) for d in range(200)]
    events = pl.DataFrame(
        {
            Col.USER: ["u"] * 200,
            Col.ITEM: ["i"] * 200,
            Col.EVENT: pl.Series(["view"] * 200).cast(EVENTS_SCHEMA[Col.EVENT]),
            Col.TS: days,
        }
    ).lazy()
    p2 = sel.bench.PROTOCOLS["p2"]
    wide = sel.widened(p2, 3)
    assert wide.key == "p2-sel3" and "split.n_folds=6" in wide.split and "split.name=rolling_origin_sel3" in wide.split
    own, widened = _folds(sel, p2, events), _folds(sel, wide, events)
    assert widened[2:] == own and len(widened) == 6
    # the three validation windows are the 14 days before each of folds 0-2's tests,
    # the last one the protocol's fold-0 validation window, all before its first test
    assert [w[1] - w[0] for w in widened[:3]] == [timedelta(days=14)] * 3
    assert widened[2][0] == own[0][0] and widened[2][1] == own[0][1]
    assert widened[1][1] == widened[2][0] and widened[0][1] == widened[1][0]


def test_only_a_rolling_origin_can_be_widened(sel: ModuleType) -> None:
    with pytest.raises(SystemExit, match="only a rolling-origin protocol"):
        sel.widened(sel.bench.PROTOCOLS["p3"], 3)
    with pytest.raises(SystemExit, match="at least 1"):
        sel.widened(sel.bench.PROTOCOLS["p2"], 0)


def test_windows_are_pooled_by_their_users(sel: ModuleType) -> None:
    fits = [{"metrics": {"ndcg@10": 0.3, "users": 60.0}}, {"metrics": {"ndcg@10": 0.1, "users": 20.0}}]
    assert sel.pooled(fits) == pytest.approx((0.3 * 60 + 0.1 * 20) / 80)
    with pytest.raises(ValueError, match="no users"):
        sel.pooled([{"metrics": {"ndcg@10": 0.0, "users": 0.0}}])


@pytest.mark.parametrize("jobs", [1, 2])
def test_validation_windows_alone_are_fitted_and_the_better_mean_is_chosen(
    sel: ModuleType, tmp_path: Path, jobs: int
) -> None:
    """The stand-in scores bpr_mf 0.1 above popularity on every window: it is chosen,
    every fit is a validation fit of its own window and seed, and a rerun fits nothing."""
    bench = sel.bench
    protocol = sel.widened(bench.PROTOCOLS["p2"], 3)
    specs = [bench.ModelSpec("pop", "popularity", bench.OURS), bench.ModelSpec("bpr_mf", "bpr_mf", bench.OURS)]
    folds = ["fold-0", "fold-1", "fold-2"]
    cache = tmp_path / "cache.json"
    b = bench.Bench(tmp_path, bench.Cache(cache, False), {"p2-sel3/default": "sha"}, fit_fn=stub_fit)
    result = sel.select(b, protocol, specs, (42, 1), folds, jobs)
    assert result["chosen"] == "bpr_mf" and result["ranking"] == ["bpr_mf", "pop"]
    assert b.counts == {"fitted": 12, "from_cache": 0}
    keys = json.loads(cache.read_text())
    assert len(keys) == 12 and all(k.startswith("p2-sel3/fold-") and "/val/seed=" in k for k in keys)
    seed = result["models"]["bpr_mf"]["seeds"]["42"]
    assert list(seed["windows"]) == folds
    assert seed["pooled"] == pytest.approx(sum(w["ndcg@10"] for w in seed["windows"].values()) / 3)  # 30 users each
    assert result["models"]["bpr_mf"]["mean"] == pytest.approx(
        (seed["pooled"] + result["models"]["bpr_mf"]["seeds"]["1"]["pooled"]) / 2
    )
    again = bench.Bench(tmp_path, bench.Cache(cache, False), {"p2-sel3/default": "sha"}, fit_fn=stub_fit)
    assert sel.select(again, protocol, specs, (42, 1), folds, jobs) == result
    assert again.counts == {"fitted": 0, "from_cache": 12}


def test_a_model_with_a_grid_is_refused(sel: ModuleType, tmp_path: Path) -> None:
    bench = sel.bench
    spec = bench.ModelSpec("knn", "item_knn", bench.OURS, grid={"k": [50, 200]})
    b = bench.Bench(tmp_path, bench.Cache(tmp_path / "cache.json", False), {}, fit_fn=stub_fit)
    with pytest.raises(SystemExit, match="one point per model"):
        sel.select(b, sel.widened(bench.PROTOCOLS["p2"], 2), [spec], (42,), ["fold-0", "fold-1"], 1)


def test_a_marker_vouches_only_for_the_folders_it_names(sel: ModuleType, tmp_path: Path) -> None:
    """bench_movielens.prepare's record of which code built which split and features:
    an older one-digest marker vouches for nothing."""
    bench = sel.bench
    marker = tmp_path / "built_by.json"
    assert bench.built_by(marker) == {}
    marker.write_text(json.dumps({"code_sha256": "abc"}))
    assert bench.built_by(marker) == {}
    marker.write_text(json.dumps({"built": {"p3/split": "abc", "p3/default": "abc"}}))
    assert bench.built_by(marker) == {"p3/split": "abc", "p3/default": "abc"}


def test_arguments_name_a_missing_dataset_or_a_bad_job_count(
    sel: ModuleType, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        sel.parse_args(["--models", "ranker_lgbm_profile", "--raw", str(tmp_path)])
    assert f"{tmp_path}: no MovieLens-100K here" in capsys.readouterr().err
    (tmp_path / "u.data").write_text("1\t1\t5\t874965758\n")
    with pytest.raises(SystemExit):
        sel.parse_args(["--models", "ranker_lgbm_profile", "--raw", str(tmp_path), "--jobs", "0"])
    assert "--jobs must be at least 1" in capsys.readouterr().err
    args = sel.parse_args(["--models", "ranker_lgbm_profile", "--raw", str(tmp_path), "--windows", "2"])
    assert (args.windows, args.protocol, args.jobs) == (2, "p2", 1)
