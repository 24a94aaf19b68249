"""Nearest-neighbour indexes of a package: one per embedding model it serves.

An embedding model (ALS, implicit BPR, BPR-MF, two-tower, SASRec) scores a user
by the inner product of its user and item vectors (`Recommender.item_vectors`),
so a service can retrieve its top items from an index instead of scoring the
whole catalogue. The package holds an index per such model: the run's own model
(`ann/model/`) and, for the two-stage ranker, each candidate generator that is
one (`ann/generators.<name>/`), built by `serving/ann.py` as conf/ann/ says
(exact below `exact_below` items, HNSW or IVF above).

What an approximate index loses depends on the vectors, so its recall@k against
exact search is measured at export on a sample of the run's real users (their
own `user_vectors`, drawn with a fixed seed) and recorded in the package manifest
with the query times: `manifest["ann"][<name>]`.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from recsys_cli.errors import IntegrityError

if TYPE_CHECKING:
    from recsys_cli.models.base import Recommender
    from recsys_cli.serving.ann import AnnIndex, AnnSpec

MODEL_KEY = "model"
SAMPLE_SEED = 0
TUNING_SEED = 1


def embedding_models(model: Recommender) -> dict[str, Recommender]:
    """The models of a run that retrieve by inner product, by their name in `ann/`."""
    found = {MODEL_KEY: model} if model.item_vectors() is not None else {}
    ranker = sys.modules.get("recsys_cli.models.ranker")  # loaded whenever `model` is a ranker
    if ranker is not None and isinstance(model, ranker.TwoStageRanker):
        found |= {f"generators.{n}": g for n, g in model.generators.items() if g.item_vectors() is not None}
    return found


def write_indexes(folder: Path, model: Recommender, spec: AnnSpec) -> dict[str, dict[str, Any]]:
    """Build, measure and save an index per embedding model under `folder`
    (`ann/<name>/`); returns each one's record for the package manifest."""
    from recsys_cli.serving.ann import measure_recall

    records = {}
    for name, part in embedding_models(model).items():
        assert part.users is not None
        index, tuning = _index_meeting_recall(part, spec)
        index.save(folder / name)
        queries = part.user_vectors(sample_users(len(part.users), spec.recall_sample_users))
        measured = measure_recall(index, queries, k=spec.k)
        records[name] = {
            "tuning": tuning,
            "path": f"{folder.name}/{name}",
            "kind": index.kind,
            "params": dict(index.params),
            "items": index.size,
            "dim": index.dim,
            "k": measured["k"],
            "recall": measured[f"recall@{measured['k']}"],
            "queries": measured["queries"],
            "ann_ms_median": measured["ann_ms_median"],
            "exact_ms_median": measured["exact_ms_median"],
        }
    return records


def _index_meeting_recall(part: Recommender, spec: AnnSpec) -> tuple[AnnIndex, dict[str, Any]]:
    """The configured index, its query-time search widened until recall@k on one
    sample of users reaches `spec.min_recall`, or exact search when even the widest
    setting falls short. Tuned on its own sample (another seed), so the recall the
    manifest reports is measured on users the tuning did not see."""
    from dataclasses import replace

    from recsys_cli.serving.ann import AnnIndex, widen_to_recall

    vectors = part.item_vectors()
    assert vectors is not None and part.users is not None
    index = AnnIndex.build(vectors, spec)
    queries = part.user_vectors(sample_users(len(part.users), spec.recall_sample_users, seed=TUNING_SEED))
    tried = widen_to_recall(index, queries, spec)
    tuning: dict[str, Any] = {"min_recall": spec.min_recall, "tried": tried}
    if tried and tried[-1]["recall"] < spec.min_recall:
        tuning["fallback"] = f"exact: the widest {index.kind} search recalled {tried[-1]['recall']:.3f}"
        return AnnIndex.build(vectors, replace(spec, kind="exact")), tuning
    if index.kind == "ivf" and index.params["nprobe"] >= index.params.get("nlist", index.size):
        # Every list scanned: the exact search with extra steps (ALS vectors of 82k items
        # reached 0.95 only there, 0.84 ms a query against 0.35 ms exact).
        tuning["fallback"] = "exact: the recall asked for needed every IVF list"
        return index.exact(), tuning
    return index, tuning


def sample_users(n_users: int, size: int, seed: int = SAMPLE_SEED) -> np.ndarray:
    """Up to `size` known users (index >= 1), drawn without replacement with a fixed seed."""
    known = np.arange(1, n_users, dtype=np.int64)
    if known.size <= size:
        return known
    return np.sort(np.random.default_rng(seed).choice(known, size, replace=False))


def load_indexes(folder: Path, records: Any, model: Recommender) -> dict[str, AnnIndex]:
    """Each index the manifest records, read and checked against the model's catalogue."""
    from recsys_cli.serving.ann import AnnIndex

    if not isinstance(records, dict):
        raise IntegrityError(f"{folder / 'manifest.json'}: its ann record is not a mapping; export the run again")
    expected = embedding_models(model)
    missing = sorted(set(expected) - set(records))
    if missing:
        raise IntegrityError(
            f"{folder / 'ann' / missing[0]}: missing, so the package is incomplete; export the run again"
        )
    indexes = {}
    for name, record in records.items():
        path = folder / str(record.get("path", "")) if isinstance(record, dict) else folder
        if name not in expected or path.parent.name != "ann" or path.name != name:
            raise IntegrityError(f"{path}: not an embedding model of the package's model; export the run again")
        index = AnnIndex.load(path)
        items = expected[name].items
        if items is None or index.n_items != len(items):
            raise IntegrityError(f"{path}: indexes {index.n_items} items, the model has {len(items or ())}")
        indexes[name] = index
    return indexes
