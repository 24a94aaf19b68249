"""Model packages (`recsys export`): every model in conf/model/ comes back from its
package with the same recommendations as from its run; a package is read only
whole and as exported; its tables hold what docs/guide/export.md says, from the run's data
as of its cutoff, with pseudonyms only."""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from recsys_cli.config import compose
from recsys_cli.errors import IntegrityError, OutputError
from recsys_cli.models.base import Recommender
from recsys_cli.registry.integrity import MANIFEST, seal, sha256_file
from recsys_cli.registry.package import load_package, read_manifest, seal_package
from recsys_cli.registry.package_fallbacks import popularity
from recsys_cli.registry.package_lineage import feature_definitions_hash
from recsys_cli.registry.package_tables import ITEM_COLUMNS, item_table
from recsys_cli.registry.run_dir import open_run
from recsys_cli.tasks import export
from tests.registry.package_shop import MODELS, RAW_USER_PREFIX, shop, trained

Exported = Callable[[str], tuple[Path, Path]]


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Exported:
    """(run, its package in RUN/package) per model name, exported once."""
    done: dict[str, tuple[Path, Path]] = {}

    def get(name: str) -> tuple[Path, Path]:
        if name not in done:
            run = trained(tmp_path_factory, name)
            done[name] = (run, export.run(run, compose("export"), push=False).path)
        return done[name]

    return get


@pytest.fixture
def ease_copy(exported: Exported, tmp_path: Path) -> Path:
    """A copy of the EASE package to damage."""
    return Path(shutil.copytree(exported("ease")[1], tmp_path / "package"))


# ---- every model round-trips --------------------------------------------------------------------------------


@pytest.mark.parametrize("name", MODELS)
def test_every_model_recommends_the_same_from_its_package_as_from_its_run(exported: Exported, name: str) -> None:
    run, folder = exported(name)
    package = load_package(folder)
    direct = Recommender.load(run / "model")
    assert direct.users is not None
    users = np.arange(len(direct.users))  # every user the model knows, and the unknown one (0)
    for exclude_seen in (True, False):
        want_items, want_scores = direct.recommend(users, 10, exclude_seen=exclude_seen)
        got_items, got_scores = package.model.recommend(users, 10, exclude_seen=exclude_seen)
        np.testing.assert_array_equal(got_items, want_items)
        np.testing.assert_array_equal(got_scores, want_scores)
    # The model files are the run's, byte for byte, and the manifest names their class.
    for path in (run / "model").iterdir():
        assert (folder / "model" / path.name).read_bytes() == path.read_bytes()
    meta = json.loads((run / "model" / "model.json").read_text())
    assert package.manifest["model"]["class"] == meta["class"]
    assert direct.items is not None and package.vocab["items"].tokens == direct.items.tokens


@pytest.mark.parametrize("name", ["als", "bpr_mf", "implicit_bpr", "two_tower", "sasrec", "ranker_lgbm"])
def test_embedding_models_carry_an_index_whose_recall_was_measured(exported: Exported, name: str) -> None:
    _, folder = exported(name)
    package = load_package(folder)
    key = "generators.als" if name.startswith("ranker") else "model"  # the ranker's ALS generator
    assert set(package.ann) == {key}
    record = package.manifest["ann"][key]
    assert record["queries"] > 0 and 0.0 <= record["recall"] <= 1.0 and record["k"] == 100
    assert record["kind"] == "exact" and record["recall"] == 1.0  # 200 items: below exact_below
    index = package.ann[key]
    model = package.model if key == "model" else package.model.generators["als"]  # type: ignore[attr-defined]
    assert index.n_items == len(package.items) + 1 and (folder / "ann" / key / "index.faiss").is_file()
    ids, _ = index.search(model.user_vectors(np.array([1, 2])), 5)
    assert ids.shape == (2, 5) and (ids > 0).all()  # never the unknown item


def test_models_without_item_vectors_get_no_index(exported: Exported) -> None:
    _, folder = exported("ease")
    assert load_package(folder).ann == {} and not (folder / "ann").exists()


@pytest.mark.parametrize("name", ["ranker_lgbm", "ranker_lgbm_ensemble"])
def test_ranker_boosters_are_lightgbm_text_files(exported: Exported, name: str) -> None:
    import lightgbm as lgb

    run, folder = exported(name)
    boosters = sorted((folder / "model").glob("lightgbm_*.txt"))
    assert [p.name for p in boosters] == [f"lightgbm_{i}.txt" for i in range(len(boosters))] and boosters
    assert len(boosters) == (2 if name.endswith("ensemble") else 1)
    for path in boosters:
        assert lgb.Booster(model_file=str(path)).num_trees() > 0
    listed = {e["path"] for e in read_manifest(folder)["files"]}
    assert {f"model/{p.name}" for p in boosters} <= listed
    assert {f"model/{p.name}" for p in boosters} <= {e["path"] for e in open_run(run).manifest["files"]}


# ---- a package is read only whole and as exported ------------------------------------------------------------


def test_a_flipped_byte_in_a_weight_is_refused_naming_the_file(ease_copy: Path) -> None:
    weights = ease_copy / "model" / "weights.safetensors"
    data = bytearray(weights.read_bytes())
    data[-5] ^= 0x01
    weights.write_bytes(bytes(data))
    with pytest.raises(IntegrityError, match=r"model/weights\.safetensors: changed content"):
        load_package(ease_copy)


def test_a_truncated_file_is_refused_naming_it(ease_copy: Path) -> None:
    users = ease_copy / "users.parquet"
    users.write_bytes(users.read_bytes()[:-100])
    with pytest.raises(IntegrityError, match=r"users\.parquet: changed size"):
        load_package(ease_copy)


def test_a_removed_file_is_refused_naming_it(ease_copy: Path) -> None:
    (ease_copy / "fallbacks" / "segments.parquet").unlink()
    with pytest.raises(IntegrityError, match=r"fallbacks/segments\.parquet: missing"):
        load_package(ease_copy)


def test_an_added_file_is_refused_naming_it(ease_copy: Path) -> None:
    (ease_copy / "model" / "extra.json").write_text("{}")
    with pytest.raises(IntegrityError, match=r"model/extra\.json: added"):
        load_package(ease_copy)


def test_a_wrong_format_version_is_refused_naming_the_manifest(ease_copy: Path) -> None:
    manifest = json.loads((ease_copy / MANIFEST).read_text())
    (ease_copy / MANIFEST).write_text(json.dumps(seal({**manifest, "format_version": 2})))
    with pytest.raises(IntegrityError, match=r"manifest\.json: package format version 2; this recsys reads version 1"):
        load_package(ease_copy)


def test_an_edited_class_name_is_refused_even_with_a_resealed_manifest(ease_copy: Path) -> None:
    meta_path = ease_copy / "model" / "model.json"
    meta = json.loads(meta_path.read_text())
    meta_path.write_text(json.dumps({**meta, "class": "os.system"}))
    with pytest.raises(IntegrityError, match=r"model/model\.json: changed (size|content)"):
        load_package(ease_copy)
    # Whoever rewrites the hashes too still cannot make loading import anything else.
    payload = {k: v for k, v in json.loads((ease_copy / MANIFEST).read_text()).items() if k != "files"}
    seal_package(ease_copy, payload)
    with pytest.raises(IntegrityError, match=r"model/model\.json: class: 'os\.system' is not a recsys model class"):
        load_package(ease_copy)


def test_a_package_missing_a_required_file_is_incomplete(ease_copy: Path) -> None:
    (ease_copy / "items.parquet").unlink()
    payload = {k: v for k, v in json.loads((ease_copy / MANIFEST).read_text()).items() if k != "files"}
    seal_package(ease_copy, payload)  # a consistent manifest that simply lacks it
    with pytest.raises(IntegrityError, match=r"items\.parquet: missing, so the package is incomplete"):
        load_package(ease_copy)


def test_feature_definitions_must_match_what_the_service_computes(exported: Exported) -> None:
    run, folder = exported("ease")
    cfg = open_run(run).config
    same = feature_definitions_hash(cfg.features, cfg.target)
    assert load_package(folder, expected_feature_hash=same).feature_hash == same
    # The ranker's training windows are not a feature definition; a feature's window is.
    assert feature_definitions_hash({**cfg.features, "ranker_windows": 0, "name": "x"}, cfg.target) == same
    other = feature_definitions_hash({**cfg.features, "windows_days": [1, 7]}, cfg.target)
    with pytest.raises(IntegrityError, match=r"lineage\.json: built on other feature definitions"):
        load_package(folder, expected_feature_hash=other)


# ---- where the package is written ---------------------------------------------------------------------------


def test_the_package_inside_the_run_leaves_the_run_valid_and_is_replaced_by_a_new_export(exported: Exported) -> None:
    run, folder = exported("popularity")
    first = read_manifest(folder)["manifest_sha256"]
    open_run(run)  # RUN/package is not part of the run's sealed model
    again = export.run(run, compose("export", ["recent_days=3"]), push=False)
    assert again.path == folder and read_manifest(folder)["manifest_sha256"] != first
    assert not [p for p in run.iterdir() if p.name.startswith(".package")]  # no staging folder left behind


def test_a_folder_that_is_not_a_package_is_never_replaced(exported: Exported, tmp_path: Path) -> None:
    run, _ = exported("popularity")
    foreign = tmp_path / "notes"
    foreign.mkdir()
    (foreign / "todo.txt").write_text("keep me")
    for target in (foreign, run):
        with pytest.raises(OutputError, match="refusing to replace"):
            export.run(run, compose("export"), out=target, push=False)
    assert (foreign / "todo.txt").read_text() == "keep me"
    open_run(run)


# ---- the tables ---------------------------------------------------------------------------------------------


def test_item_table_has_the_documented_columns_and_flags_new_products(
    exported: Exported, tmp_path_factory: pytest.TempPathFactory
) -> None:
    _, folder = exported("ease")
    package = load_package(folder)
    items = package.items
    assert dict(items.schema) == ITEM_COLUMNS
    assert items["item_id"].to_list() == list(package.model.items.tokens[1:])  # type: ignore[union-attr]
    assert items["index"].to_list() == list(range(1, items.height + 1))
    lake = pl.read_parquet(shop(tmp_path_factory) / "lake" / "synth" / "items.parquet")
    cutoff = pl.Series([package.manifest["lineage"]["cutoff"]]).str.to_datetime(time_zone="UTC")[0]
    expected = items.select("item_id").join(lake, on="item_id", how="left")
    assert items["price"].to_list() == expected["price"].to_list()
    assert items["new_product"].to_list() == (expected["launched_at"] >= cutoff - timedelta(days=30)).to_list()
    assert items["new_product"].any() and not items["new_product"].all()


def test_a_column_the_catalogue_lacks_is_null_never_invented() -> None:
    catalog = pl.LazyFrame({"item_id": ["a", "b"], "category": ["shoes", "hats"]})
    cutoff = pl.datetime(2026, 3, 1, time_zone="UTC")
    table = item_table(("<oov>", "b", "c"), catalog, pl.select(cutoff).item(), 30)
    assert table.columns == list(ITEM_COLUMNS)
    assert table["item_id"].to_list() == ["b", "c"] and table["category"].to_list() == ["hats", None]
    for column in ("brand", "price", "stock", "launched_at", "new_product"):
        assert table[column].null_count() == 2


def test_popularity_ranks_by_distinct_users_then_events_per_key() -> None:
    events = pl.LazyFrame(
        {
            "user_id": ["u1", "u2", "u1", "u1", "u3", "u3", "u3"],
            "item_id": ["a", "a", "b", "b", "b", "c", "a"],
            "region": ["n", "n", "n", "n", "s", "s", "s"],
        }
    )
    overall = popularity(events, [], top_n=2).collect()
    assert overall.rows() == [("a", 3, 3, 1), ("b", 2, 3, 2)]  # a: 3 users; b: 2 users, 3 events; c cut
    per_region = popularity(events, ["region"], top_n=5).collect()
    assert per_region.rows() == [
        ("n", "a", 2, 2, 1),
        ("n", "b", 1, 2, 2),
        ("s", "a", 1, 1, 1),  # ties in users and events go by item id
        ("s", "b", 1, 1, 2),
        ("s", "c", 1, 1, 3),
    ]


def test_fallbacks_hold_known_items_from_before_the_cutoff(exported: Exported) -> None:
    _, folder = exported("ease")
    package = load_package(folder)
    known = set(package.items["item_id"])
    columns = {
        "global": ["item_id", "users", "events", "rank"],
        "recent": ["item_id", "users", "events", "rank"],
        "hour_of_day": ["hour_of_day", "item_id", "users", "events", "rank"],
        "segments": ["segment", "value", "item_id", "users", "events", "rank"],
    }
    for name, table in package.fallbacks.items():
        assert table.columns == columns[name], name
        assert set(table["item_id"]) <= known and table.height > 0
    top = package.fallbacks["global"]
    assert top["rank"].to_list() == list(range(1, top.height + 1))
    assert top["users"].is_sorted(descending=True)
    # The recent window is a part of the whole history, and hours are UTC hours.
    joined = package.fallbacks["recent"].join(top, on="item_id", suffix="_all")
    assert (joined["events"] <= joined["events_all"]).all()
    assert package.fallbacks["hour_of_day"]["hour_of_day"].is_between(0, 23).all()
    # The shop's user table has age, gender and region; no occupation is invented.
    assert package.manifest["contents"]["segments"] == ["age_bucket", "gender", "region"]
    assert set(package.fallbacks["segments"]["segment"]) == {"age_bucket", "gender", "region"}


def test_users_are_the_feature_snapshot_with_pseudonyms_only(
    exported: Exported, tmp_path_factory: pytest.TempPathFactory
) -> None:
    run, folder = exported("ease")
    package = load_package(folder)
    cfg = open_run(run).config
    features = Path(cfg.features_dir) / cfg.fold / cfg.part
    snapshot = package.users
    stored = pl.read_parquet(features / "user_features.parquet")
    assert snapshot.height == stored.height and set(snapshot["user_id"]) == set(stored["user_id"])
    mine = snapshot.select(stored.columns).sort("user_id")
    assert mine.equals(stored.sort("user_id"))  # the features as built, not recomputed
    sequences = pl.read_parquet(features / "sequences.parquet")
    assert (
        snapshot.join(sequences, on="user_id")
        .select("items")
        .equals(sequences.join(snapshot.select("user_id"), on="user_id").select("items"))
    )
    known = snapshot.filter(pl.col("index") > 0)
    tokens = package.vocab["users"].tokens
    assert known["user_id"].to_list() == [tokens[i] for i in known["index"]]
    _assert_no_raw_user_ids(folder, shop(tmp_path_factory))


def _assert_no_raw_user_ids(folder: Path, data_dir: Path) -> None:
    """No file of the package holds a raw customer id of the shop's source files."""
    raw = set(pl.read_csv(data_dir / "raw" / "synth" / "users.csv")["customer_id"])
    assert raw and all(r.startswith(RAW_USER_PREFIX) for r in raw)
    pattern = re.compile(rf"\b{RAW_USER_PREFIX}\d{{5,}}\b")
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        if path.suffix == ".parquet":
            text = pl.read_parquet(path).write_ndjson()
        elif path.suffix in (".json", ".txt"):
            text = path.read_text()
        else:
            text = path.read_bytes().decode("latin-1")
        assert not pattern.search(text), f"{path} holds a raw user id"


def test_lineage_records_the_data_config_metrics_environment_and_commit(exported: Exported) -> None:
    run, folder = exported("ease")
    opened = open_run(run)
    lineage = load_package(folder).lineage
    for name, key in (("lake", "lake_dir"), ("split", "split_dir"), ("features", "features_dir")):
        manifest = Path(opened.config[key]) / MANIFEST
        assert lineage[name]["manifest_sha256"] == sha256_file(manifest)
    assert lineage["split"]["manifest"] == json.loads((Path(opened.config.split_dir) / MANIFEST).read_text())
    assert lineage["features"]["manifest"] == json.loads((Path(opened.config.features_dir) / MANIFEST).read_text())
    assert lineage["metrics"] == json.loads((run / "metrics.json").read_text())
    assert lineage["environment"] == json.loads((run / "environment.json").read_text())
    assert lineage["config"]["model"]["_target_"] == "recsys_cli.models.ease.EASE"
    assert lineage["run"]["manifest_sha256"] == opened.manifest["manifest_sha256"]
    assert lineage["source"]["trained_by"] == lineage["environment"]["code"]
    split = json.loads((Path(opened.config.split_dir) / MANIFEST).read_text())
    assert lineage["cutoff"] == split["folds"][0]["val_start"]  # a part=val run: the validation start
    summary = read_manifest(folder)["lineage"]
    assert summary["lake_manifest_sha256"] == lineage["lake"]["manifest_sha256"]
    assert summary["source_commit"] == lineage["source"]["trained_by"]["git_commit"]
