"""The nearest-neighbour index over item vectors: exact search is brute force,
approximate search is measured against it (recall@100 high with generous
parameters, visibly lower when starved), the unknown item is never returned,
and a saved index reads back identical or is refused naming the damaged file."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
from omegaconf import OmegaConf

from recsys_cli.config import DEFAULT_CONF_DIR
from recsys_cli.errors import IntegrityError
from recsys_cli.schemas.groups import Ann
from recsys_cli.serving.ann import (
    INDEX_FILE,
    META_FILE,
    AnnIndex,
    AnnSpec,
    HnswSpec,
    IvfSpec,
    measure_recall,
    recall_at,
    widen_to_recall,
)

DIM = 16
GENEROUS = {
    "hnsw": AnnSpec(kind="hnsw", exact_below=0, hnsw=HnswSpec(M=32, ef_construction=200, ef_search=400)),
    "ivf": AnnSpec(kind="ivf", exact_below=0, ivf=IvfSpec(nlist=32, nprobe=16)),
}
STARVED = {
    "hnsw": AnnSpec(kind="hnsw", exact_below=0, hnsw=HnswSpec(M=4, ef_construction=8, ef_search=1)),
    "ivf": AnnSpec(kind="ivf", exact_below=0, ivf=IvfSpec(nlist=64, nprobe=1)),
}
EVERY_KIND = {"exact": AnnSpec(kind="exact"), **GENEROUS}


def clustered(n: int, seed: int, clusters: int = 40) -> np.ndarray:
    """Points around 40 fixed centres (the same for every seed): items and the
    users who like them share a neighbourhood, as learnt embeddings do."""
    centres = np.random.default_rng(0).standard_normal((clusters, DIM))
    rng = np.random.default_rng(seed)
    return (centres[rng.integers(0, clusters, n)] + 0.3 * rng.standard_normal((n, DIM))).astype(np.float32)


@pytest.fixture(scope="module")
def items() -> np.ndarray:
    return clustered(3001, seed=1)  # row 0 is the unknown item


@pytest.fixture(scope="module")
def queries() -> np.ndarray:
    return clustered(200, seed=2)


def test_exact_search_is_brute_force(items: np.ndarray, queries: np.ndarray) -> None:
    index = AnnIndex.build(items, AnnSpec(kind="exact"))
    ids, scores = index.search(queries, 10)
    brute = queries @ items[1:].T
    expected = np.argsort(-brute, axis=1, kind="stable")[:, :10] + 1
    np.testing.assert_array_equal(ids, expected)
    np.testing.assert_allclose(scores, np.take_along_axis(brute, expected - 1, axis=1), rtol=1e-5)
    assert ids.dtype == np.int64 and scores.dtype == np.float32


@pytest.mark.parametrize(
    ("spec", "n_items", "kind"),
    [
        (AnnSpec(), 1_000, "exact"),  # auto below exact_below
        (AnnSpec(exact_below=500), 1_000, "ivf"),  # auto above it means IVF
        (AnnSpec(kind="hnsw", exact_below=500), 1_000, "hnsw"),
        (AnnSpec(kind="ivf", exact_below=5_000), 1_000, "exact"),  # a small catalogue is searched exactly
        (AnnSpec(kind="ivf", exact_below=0), 1_000, "ivf"),
        (AnnSpec(kind="exact", exact_below=0), 1_000, "exact"),
    ],
)
def test_exact_below_a_catalogue_size_else_the_configured_kind(spec: AnnSpec, n_items: int, kind: str) -> None:
    assert AnnIndex.build(clustered(n_items, seed=3), spec).kind == kind


@pytest.mark.parametrize("kind", sorted(GENEROUS))
def test_recall_is_measured_high_when_generous_and_lower_when_starved(
    kind: str, items: np.ndarray, queries: np.ndarray
) -> None:
    generous = measure_recall(AnnIndex.build(items, GENEROUS[kind]), queries, k=100)
    starved = measure_recall(AnnIndex.build(items, STARVED[kind]), queries, k=100)
    assert generous["kind"] == starved["kind"] == kind
    assert generous["recall@100"] >= 0.95
    assert starved["recall@100"] < 0.6 < generous["recall@100"]
    assert generous["queries"] == 200 and generous["k"] == 100
    for report in (generous, starved):  # timings are what was measured: positive, finite
        assert 0 < report["ann_ms_median"] < float("inf") and 0 < report["exact_ms_median"] < float("inf")


@pytest.mark.parametrize(("kind", "starved"), [("hnsw", {"ef_search": 1}), ("ivf", {"nprobe": 1})])
def test_query_time_parameters_change_without_a_rebuild(
    kind: str, starved: dict[str, int], items: np.ndarray, queries: np.ndarray, tmp_path: Path
) -> None:
    index = AnnIndex.build(items, GENEROUS[kind])
    before = measure_recall(index, queries)["recall@100"]
    index.set_search(**starved)
    assert measure_recall(index, queries)["recall@100"] < before
    index.save(tmp_path / "ann")
    assert AnnIndex.load(tmp_path / "ann").params == index.params
    with pytest.raises(ValueError, match="query-time parameters"):
        index.set_search(M=4)


def test_an_exact_index_recalls_everything(items: np.ndarray, queries: np.ndarray) -> None:
    assert measure_recall(AnnIndex.build(items, AnnSpec(kind="exact")), queries, k=100)["recall@100"] == 1.0


@pytest.mark.parametrize("kind", sorted(EVERY_KIND))
def test_the_unknown_item_is_never_returned(kind: str, items: np.ndarray, queries: np.ndarray) -> None:
    """Even when its vector would score best for every query."""
    loud = items.copy()
    loud[0] = 100 * queries.mean(axis=0)
    index = AnnIndex.build(loud, EVERY_KIND[kind])
    ids, _ = index.search(queries, 50)
    assert index.size == items.shape[0] - 1
    assert not (ids == 0).any() and ((ids >= 1) & (ids < items.shape[0])).all()


def test_k_beyond_the_catalogue_returns_every_item_once() -> None:
    index = AnnIndex.build(clustered(6, seed=4), AnnSpec(kind="exact"))
    ids, _ = index.search(clustered(2, seed=5), 100)
    assert ids.shape == (2, 5) and all(sorted(row) == [1, 2, 3, 4, 5] for row in ids.tolist())


@pytest.mark.parametrize("kind", sorted(EVERY_KIND))
def test_save_and_load_give_identical_results(
    kind: str, items: np.ndarray, queries: np.ndarray, tmp_path: Path
) -> None:
    index = AnnIndex.build(items, EVERY_KIND[kind])
    index.save(tmp_path / kind)
    loaded = AnnIndex.load(tmp_path / kind)
    assert (loaded.kind, loaded.params, loaded.n_items, loaded.dim) == (index.kind, index.params, 3001, DIM)
    for got, expected in zip(loaded.search(queries, 100), index.search(queries, 100), strict=True):
        np.testing.assert_array_equal(got, expected)
    meta = json.loads((tmp_path / kind / META_FILE).read_text())
    assert meta["kind"] == kind and meta["n_items"] == 3001 and meta["dim"] == DIM and meta["faiss_version"]
    assert sorted(p.name for p in (tmp_path / kind).iterdir()) == [META_FILE, INDEX_FILE]


@pytest.fixture
def saved(items: np.ndarray, tmp_path: Path) -> Path:
    AnnIndex.build(items, GENEROUS["hnsw"]).save(tmp_path / "ann")
    return tmp_path / "ann"


def _flip_a_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def _edit(field: str, value: object) -> object:
    def edit(folder: Path) -> None:
        meta = json.loads((folder / META_FILE).read_text())
        (folder / META_FILE).write_text(json.dumps(meta | {field: value}))

    return edit


def _replace_index(folder: Path) -> None:
    """Another valid index (an exact one over the same items), its sha256 recorded: only
    the record's kind disagrees with the file."""
    meta = json.loads((folder / META_FILE).read_text())
    other = folder.parent / "other"
    AnnIndex.build(AnnIndex.load(folder).vectors(), AnnSpec(kind="exact")).save(other)
    (folder / INDEX_FILE).write_bytes((other / INDEX_FILE).read_bytes())
    written = json.loads((other / META_FILE).read_text())
    (folder / META_FILE).write_text(json.dumps(meta | {"bytes": written["bytes"], "sha256": written["sha256"]}))


@pytest.mark.parametrize(
    ("damage", "file", "message"),
    [
        (lambda f: _flip_a_byte(f / INDEX_FILE), INDEX_FILE, "differs from the sha256"),
        (lambda f: (f / INDEX_FILE).write_bytes((f / INDEX_FILE).read_bytes()[:1000]), INDEX_FILE, "sha256"),
        (lambda f: (f / INDEX_FILE).unlink(), INDEX_FILE, "missing"),
        (lambda f: (f / META_FILE).write_text("{not json"), META_FILE, "not readable JSON"),
        (lambda f: (f / META_FILE).unlink(), META_FILE, "missing"),
        (_edit("dim", 8), INDEX_FILE, "but ann.json says a hnsw index of 3000 items x 8"),
        (_edit("n_items", 10), INDEX_FILE, "but ann.json says a hnsw index of 9 items"),
        (_edit("kind", "ivf"), META_FILE, "params must give nprobe"),
        (_edit("kind", "annoy"), META_FILE, "kind 'annoy' is none of"),
        (_edit("format_version", 2), META_FILE, "format_version 2"),
        (_edit("sha256", None), META_FILE, "field 'sha256' missing"),
        (_replace_index, INDEX_FILE, "holds an exact index of 3000 items x 16 but ann.json says a hnsw"),
    ],
)
def test_a_damaged_or_disagreeing_index_is_refused_naming_the_file(
    damage: object, file: str, message: str, saved: Path
) -> None:
    damage(saved)  # type: ignore[operator]
    with pytest.raises(IntegrityError, match=message) as refused:
        AnnIndex.load(saved)
    assert str(refused.value).startswith(str(saved / file)) and "\n" not in str(refused.value)


def test_the_shipped_config_validates_and_builds_the_spec() -> None:
    """conf/ann/ passes its schema, and the schema names the keys `AnnSpec` reads."""
    for path in sorted((DEFAULT_CONF_DIR / "ann").glob("*.yaml")):
        node = OmegaConf.to_container(OmegaConf.load(path))
        Ann.model_validate(node)
        spec = AnnSpec.of(node)  # type: ignore[arg-type]
        assert spec.hnsw.M == node["hnsw"]["M"] and spec.ivf.nprobe == node["ivf"]["nprobe"]  # type: ignore[index]
    assert set(Ann.model_fields) == set(AnnSpec.__dataclass_fields__)
    assert set(Ann.model_fields["hnsw"].annotation.model_fields) == set(HnswSpec.__dataclass_fields__)  # type: ignore[union-attr]
    assert set(Ann.model_fields["ivf"].annotation.model_fields) == set(IvfSpec.__dataclass_fields__)  # type: ignore[union-attr]


@pytest.mark.parametrize("kind", ["hnsw", "ivf"])
def test_search_is_widened_until_the_minimum_recall_is_met(kind: str, items: np.ndarray, queries: np.ndarray) -> None:
    # A well-built index searched too narrowly (ef_search or nprobe 1).
    starved = {
        "hnsw": AnnSpec(kind="hnsw", exact_below=0, hnsw=HnswSpec(M=16, ef_construction=100, ef_search=1)),
        "ivf": STARVED["ivf"],
    }[kind]
    spec = dataclasses.replace(starved, min_recall=0.95)
    index = AnnIndex.build(items, spec)
    tried = widen_to_recall(index, queries, spec)
    name = "ef_search" if kind == "hnsw" else "nprobe"
    assert [t[name] for t in tried] == [2**i for i in range(len(tried))]  # doubled from the starved 1
    assert tried[0]["recall"] < 0.95 <= tried[-1]["recall"] and len(tried) > 1
    assert index.params[name] == tried[-1][name]  # the index is left at the setting that met it
    assert recall_at(index, queries, 100) == tried[-1]["recall"]


def test_an_exact_index_needs_no_widening(items: np.ndarray, queries: np.ndarray) -> None:
    assert widen_to_recall(AnnIndex.build(items, AnnSpec(kind="exact")), queries, AnnSpec(min_recall=1.0)) == []


def test_a_graph_too_poor_for_the_minimum_stops_at_the_widest_search(items: np.ndarray, queries: np.ndarray) -> None:
    spec = dataclasses.replace(STARVED["hnsw"], min_recall=0.999)  # M=4, ef_construction=8: a poor graph
    index = AnnIndex.build(items, spec)
    tried = widen_to_recall(index, queries, spec)
    assert tried[-1]["ef_search"] == index.size and tried[-1]["recall"] < 0.999  # widest search, still short


def test_the_specs_defaults_are_conf_ann_default() -> None:
    """Code that builds an index without a composed config (a model's own retrieval
    index) gets what conf/ann/default.yaml says."""
    from recsys_cli.config import compose

    assert AnnSpec.of(compose("export").ann) == AnnSpec()
