"""A package's index meets the configured recall, or the package searches exactly:
the query-time search is widened on one sample of users, and recall is reported
on another."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from recsys_cli.registry.package_ann import _index_meeting_recall
from recsys_cli.serving.ann import AnnSpec, HnswSpec, IvfSpec


def embedding_model(n_items: int = 2000, n_users: int = 300, dim: int = 16) -> SimpleNamespace:
    """What export reads from an embedding model: its users, item and user vectors."""
    rng = np.random.default_rng(7)
    centres = rng.normal(size=(20, dim))
    items = (centres[rng.integers(0, 20, n_items)] + 0.3 * rng.normal(size=(n_items, dim))).astype(np.float32)
    users = rng.normal(size=(n_users, dim)).astype(np.float32)
    return SimpleNamespace(
        users=[None] * n_users, item_vectors=lambda: items, user_vectors=lambda rows: users[np.asarray(rows)]
    )


def test_a_narrow_search_is_widened_until_it_recalls_enough() -> None:
    spec = AnnSpec(kind="ivf", exact_below=0, ivf=IvfSpec(nlist=32, nprobe=1), min_recall=0.95, k=50)
    index, tuning = _index_meeting_recall(embedding_model(), spec)
    assert index.kind == "ivf" and index.params["nprobe"] > 1
    assert tuning["tried"][0]["recall"] < 0.95 <= tuning["tried"][-1]["recall"]
    assert "fallback" not in tuning


def test_an_index_that_cannot_recall_enough_falls_back_to_exact_search() -> None:
    poor = AnnSpec(kind="hnsw", exact_below=0, hnsw=HnswSpec(M=2, ef_construction=2, ef_search=1))
    index, tuning = _index_meeting_recall(embedding_model(), AnnSpec(**{**poor.__dict__, "min_recall": 1.0}))
    assert index.kind == "exact"
    assert tuning["fallback"].startswith("exact: the widest hnsw search recalled")


def test_an_ivf_index_that_must_scan_every_list_becomes_exact_search() -> None:
    """Scanning every list recalls all, as exact search does, at more cost: the
    package then searches exactly, and says why."""
    spec = AnnSpec(kind="ivf", exact_below=0, ivf=IvfSpec(nlist=4, nprobe=1), min_recall=1.0, k=50)
    index, tuning = _index_meeting_recall(embedding_model(), spec)
    assert tuning["tried"][-1]["nprobe"] == 4 and tuning["tried"][-1]["recall"] == 1.0
    assert index.kind == "exact"
    assert tuning["fallback"] == "exact: the recall asked for needed every IVF list"
