"""Nearest-neighbour retrieval over a model's item vectors, by inner product (faiss).

An embedding model scores a user by `user_vectors(u) @ item_vectors().T`; scoring
the whole catalogue for each request costs O(items). Below `exact_below` items
an exact flat index is fast enough and loses nothing; above it an HNSW graph or
an inverted-file (IVF) index answers in far less time at the price of missing
some of the true top-k. That price depends on the vectors, so it is measured
(`measure_recall`, against exact search on the same vectors), never assumed.

Row 0 of the item vectors is the unknown item and is never indexed: the index
holds rows 1..n-1 and search maps its positions back to item indices.

Saved as faiss's own file (`faiss.write_index`, no pickle) beside `ann.json`,
which records the kind, parameters, sizes and the index file's sha256; `load`
checks the file against it before faiss reads a byte, then checks the index it
read against the record.

Threads: faiss parallelises with OpenMP, and `faiss.omp_set_num_threads` reaches
only the calling thread. Building uses the process's setting (all cores unless
OMP_NUM_THREADS says otherwise); query times are measured one query at a time on
one thread, which is how a server run with OMP_NUM_THREADS=1 answers requests
(two threads contending for one small query are several times slower).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from recsys_cli.errors import IntegrityError
from recsys_cli.registry.integrity import read_json_object, sha256_file, write_json

INDEX_FILE = "index.faiss"
META_FILE = "ann.json"
FORMAT_VERSION = 1
Kind = Literal["exact", "hnsw", "ivf"]
KINDS: tuple[Kind, ...] = ("exact", "hnsw", "ivf")
# IVF's k-means wants about 39 training points per list (faiss warns below that);
# a small catalogue gets fewer lists rather than badly trained ones.
POINTS_PER_LIST = 39


@dataclass(frozen=True)
class HnswSpec:
    M: int = 32  # graph neighbours per node: memory and build time against recall
    ef_construction: int = 200
    ef_search: int = 128  # candidates kept per query: time against recall


@dataclass(frozen=True)
class IvfSpec:
    nlist: int = 1024  # k-means lists (capped at n / 39)
    nprobe: int = 32  # lists scanned per query


@dataclass(frozen=True)
class AnnSpec:
    """conf/ann/: which index, its parameters, and how recall is measured."""

    kind: Literal["auto", "exact", "hnsw", "ivf"] = "auto"
    exact_below: int = 20_000  # catalogues smaller than this get exact search whatever `kind` says
    hnsw: HnswSpec = field(default_factory=HnswSpec)
    ivf: IvfSpec = field(default_factory=IvfSpec)
    recall_sample_users: int = 1000
    k: int = 100
    # Export widens the query-time search (IVF nprobe, HNSW ef_search; doubling) until
    # recall@k on sampled users reaches this, and falls back to exact search if the
    # widest setting does not: weakly trained vectors recalled 0.2 at the defaults.
    min_recall: float = 0.95

    @classmethod
    def of(cls, cfg: AnnSpec | Mapping[str, Any] | None) -> AnnSpec:
        """From a composed config node (a DictConfig or dict) or a spec; None: defaults."""
        if cfg is None or isinstance(cfg, AnnSpec):
            return cfg or cls()
        node = dict(cfg)
        hnsw, ivf = dict(node.pop("hnsw", None) or {}), dict(node.pop("ivf", None) or {})
        return cls(**node, hnsw=HnswSpec(**hnsw), ivf=IvfSpec(**ivf))

    def chosen(self, n_indexed: int) -> Kind:
        """The index kind for a catalogue of `n_indexed` items. Auto means IVF: on
        100k two-tower item vectors (scripts/bench_ann.py) IVF at the default
        parameters recalled more in less time than HNSW, built 6-7x faster and took
        half the space."""
        if self.kind == "exact" or n_indexed < self.exact_below:
            return "exact"
        return "ivf" if self.kind == "auto" else self.kind


class AnnIndex:
    """A faiss index over items 1..n-1 of an (n_items, dim) matrix, searched by inner product."""

    def __init__(self, index: Any, kind: Kind, params: dict[str, int], n_items: int, dim: int) -> None:
        self.index, self.kind, self.params, self.n_items, self.dim = index, kind, params, n_items, dim

    @classmethod
    def build(cls, vectors: np.ndarray, cfg: AnnSpec | Mapping[str, Any] | None = None) -> AnnIndex:
        """Index `vectors` (row i: item i; row 0, the unknown item, left out) as
        `cfg` says: exact below `exact_below` items, else HNSW or IVF."""
        spec = AnnSpec.of(cfg)
        items = _matrix(vectors, None, "item vectors")[1:]
        if items.shape[0] == 0:
            raise ValueError("item vectors: nothing to index besides the unknown item (row 0)")
        kind = spec.chosen(items.shape[0])
        index, params = _new_index(kind, items, spec)
        return cls(index, kind, params, items.shape[0] + 1, items.shape[1])

    @property
    def size(self) -> int:
        """Items the index holds (every item but the unknown one)."""
        return int(self.index.ntotal)

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(ids int64, scores float32), each (len(queries), min(k, size)), best first.
        Ids are item indices (never 0); an approximate index that finds fewer than k
        items pads with id -1 and score -inf."""
        queries = _matrix(queries, self.dim, "queries")
        scores, positions = self.index.search(queries, min(k, self.size))
        ids = np.where(positions >= 0, positions + 1, -1).astype(np.int64)
        return ids, np.where(positions >= 0, scores, -np.inf).astype(np.float32)

    def set_search(self, **params: int) -> None:
        """Change query-time parameters (HNSW's `ef_search`, IVF's `nprobe`) without a
        rebuild: recall against query time is tuned on the built index."""
        allowed = {"hnsw": {"ef_search"}, "ivf": {"nprobe"}}.get(self.kind, set())
        unknown = sorted(set(params) - allowed)
        if unknown or any(not isinstance(v, int) or v < 1 for v in params.values()):
            raise ValueError(f"{self.kind} index: query-time parameters are {sorted(allowed)} (positive), got {params}")
        self.params = self.params | params
        _set_search_params(self.index, self.kind, self.params)

    def vectors(self) -> np.ndarray:
        """(n_items, dim) the indexed vectors, read back from the index (row 0 zeros)."""
        import faiss

        index: Any = self.index
        if self.kind == "ivf":  # IVF reads vectors back by id only through a direct map
            index = faiss.clone_index(index)
            index.make_direct_map()
        return np.vstack([np.zeros((1, self.dim), np.float32), index.reconstruct_n(0, self.size)])

    def exact(self) -> AnnIndex:
        """Exact search over the same vectors: the reference recall is measured against."""
        return self if self.kind == "exact" else AnnIndex.build(self.vectors(), AnnSpec(kind="exact"))

    def save(self, folder: Path) -> None:
        """`index.faiss` (faiss's own format) and `ann.json` (kind, parameters, sizes,
        the index file's sha256), each written under a temporary name and renamed."""
        import faiss

        folder.mkdir(parents=True, exist_ok=True)
        path = folder / INDEX_FILE
        temporary = folder / f".{INDEX_FILE}.{os.getpid()}.tmp"
        faiss.write_index(self.index, str(temporary))
        os.replace(temporary, path)
        meta = {
            "format_version": FORMAT_VERSION,
            "kind": self.kind,
            "metric": "inner_product",
            "params": self.params,
            "n_items": self.n_items,
            "dim": self.dim,
            "index_file": INDEX_FILE,
            "bytes": path.stat().st_size,
            "sha256": sha256_file(path),
            "faiss_version": faiss.__version__,
        }
        write_json(folder / META_FILE, meta)

    @classmethod
    def load(cls, folder: Path) -> AnnIndex:
        """Read a saved index, refusing (one `IntegrityError` line naming the file) a
        record that is missing or malformed, an index file whose size or sha256
        differs from it, and an index whose kind, size or width disagrees with it."""
        import faiss

        meta = _read_meta(folder / META_FILE)
        path = folder / INDEX_FILE
        if not path.is_file():
            raise IntegrityError(f"{path}: missing; the index folder is incomplete, export the model again")
        if path.stat().st_size != meta["bytes"] or sha256_file(path) != meta["sha256"]:
            raise IntegrityError(f"{path}: differs from the sha256 {META_FILE} records (damaged or replaced)")
        try:
            index = faiss.read_index(str(path))
        except RuntimeError as exc:
            raise IntegrityError(f"{path}: not a readable faiss index ({_last_words(exc)})") from None
        found = (_kind_of(index), int(index.ntotal), int(index.d))
        said = (meta["kind"], meta["n_items"] - 1, meta["dim"])
        if found != said or index.metric_type != faiss.METRIC_INNER_PRODUCT:
            raise IntegrityError(
                f"{path}: holds {_shape(*found)} but {META_FILE} says {_shape(*said)} by inner product"
            )
        _set_search_params(index, meta["kind"], meta["params"])
        return cls(index, meta["kind"], meta["params"], meta["n_items"], meta["dim"])


# The query-time parameter of each approximate kind and its largest useful value.
_WIDENING = {"ivf": "nprobe", "hnsw": "ef_search"}
_MAX_EF_SEARCH = 4096


def widen_to_recall(index: AnnIndex, queries: np.ndarray, spec: AnnSpec) -> list[dict[str, Any]]:
    """Double `index`'s query-time parameter until recall@k on `queries` reaches
    `spec.min_recall` or the parameter cannot grow (IVF: every list scanned; HNSW:
    ef_search 4096). Returns each setting tried with its recall, in order; the index
    is left at the last one. Exact indexes are returned as they are."""
    name = _WIDENING.get(index.kind)
    tried: list[dict[str, Any]] = []
    if name is None:
        return tried
    limit = index.params.get("nlist", index.size) if index.kind == "ivf" else min(_MAX_EF_SEARCH, index.size)
    while True:
        recall = recall_at(index, queries, spec.k)
        tried.append({name: index.params[name], "recall": recall})
        if recall >= spec.min_recall or index.params[name] >= limit:
            return tried
        index.set_search(**{name: min(2 * index.params[name], limit)})


def measure_recall(index: AnnIndex, queries: np.ndarray, k: int = 100, timed: int = 200) -> dict[str, Any]:
    """Recall@k of `index` against exact search over the same vectors (the share of
    each query's exact top-k that the index also returns, averaged over queries),
    and the median time of one query, alone on one thread, for both: measured on
    the first `timed` queries, as a server answers one request at a time."""
    exact = index.exact()
    k = min(k, index.size)
    sample = _matrix(queries, index.dim, "queries")[:timed]
    return {
        "kind": index.kind,
        "params": dict(index.params),
        "k": k,
        "queries": int(np.asarray(queries).shape[0]),
        f"recall@{k}": recall_at(index, queries, k, exact),
        "timed_queries": int(sample.shape[0]),
        "threads": 1,
        "ann_ms_median": _median_ms(index, sample, k),
        "exact_ms_median": _median_ms(exact, sample, k),
    }


def recall_at(index: AnnIndex, queries: np.ndarray, k: int, exact: AnnIndex | None = None) -> float:
    """The share of each query's exact top-k that `index` also returns, averaged
    over the queries (nan for none)."""
    exact = exact or index.exact()
    k = min(k, index.size)
    truth, _ = exact.search(queries, k)
    found, _ = index.search(queries, k)
    hits = (found[:, :, None] == truth[:, None, :]).any(axis=2).sum(axis=1)
    return float(np.mean(hits / k)) if truth.shape[0] else float("nan")


def _median_ms(index: AnnIndex, queries: np.ndarray, k: int, warmup: int = 10) -> float:
    """Median ms of one query; a few untimed queries first, so the first index
    measured does not pay alone for pages and caches the second finds warm."""
    times = []
    with omp_threads(1):
        for row in range(min(warmup, queries.shape[0])):
            index.search(queries[row : row + 1], k)
        for row in range(queries.shape[0]):
            start = time.perf_counter()
            index.search(queries[row : row + 1], k)
            times.append(time.perf_counter() - start)
    return float(np.median(times) * 1000) if times else float("nan")


@contextmanager
def omp_threads(n: int) -> Iterator[None]:
    """faiss's OpenMP threads for the calling thread, restored afterwards."""
    import faiss

    previous = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(n)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(previous)


def _new_index(kind: Kind, items: np.ndarray, spec: AnnSpec) -> tuple[Any, dict[str, int]]:
    import faiss

    dim = items.shape[1]
    index: Any
    params: dict[str, int]
    if kind == "exact":
        index, params = faiss.IndexFlatIP(dim), {}
    elif kind == "hnsw":
        params = asdict(spec.hnsw)
        index = faiss.IndexHNSWFlat(dim, params["M"], faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = params["ef_construction"]
    else:
        nlist = max(1, min(spec.ivf.nlist, items.shape[0] // POINTS_PER_LIST))
        params = {"nlist": nlist, "nprobe": min(spec.ivf.nprobe, nlist)}
        # The factory's index owns its quantizer, so nothing dangles once this returns.
        index = faiss.index_factory(dim, f"IVF{nlist},Flat", faiss.METRIC_INNER_PRODUCT)
        index.train(items)
    index.add(items)
    _set_search_params(index, kind, params)
    return index, params


def _set_search_params(index: Any, kind: str, params: Mapping[str, int]) -> None:
    if kind == "hnsw":
        index.hnsw.efSearch = params["ef_search"]
    elif kind == "ivf":
        index.nprobe = params["nprobe"]


def _kind_of(index: Any) -> str:
    import faiss

    if isinstance(index, faiss.IndexHNSWFlat):
        return "hnsw"
    if isinstance(index, faiss.IndexIVFFlat):
        return "ivf"
    return "exact" if isinstance(index, faiss.IndexFlat) else type(index).__name__


def _shape(kind: str, size: int, dim: int) -> str:
    return f"{'an' if kind[:1] in 'aeiou' else 'a'} {kind} index of {size} items x {dim}"


def _matrix(values: np.ndarray, dim: int | None, what: str) -> np.ndarray:
    """A C-contiguous float32 (n, dim) matrix, as faiss requires."""
    matrix = np.ascontiguousarray(values, dtype=np.float32)
    if matrix.ndim != 2 or (dim is not None and matrix.shape[1] != dim):
        raise ValueError(f"{what}: expected (n, {dim or 'dim'}) values, got shape {matrix.shape}")
    return matrix


_FIELDS: dict[str, type] = {
    "format_version": int,
    "kind": str,
    "params": dict,
    "n_items": int,
    "dim": int,
    "bytes": int,
    "sha256": str,
}


def _read_meta(path: Path) -> dict[str, Any]:
    """ann.json with every field present and of its type, or one `IntegrityError` line."""
    meta = read_json_object(path, "export the model again", missing="missing; the index folder is incomplete")
    for key, kind in _FIELDS.items():
        if not isinstance(meta.get(key), kind) or isinstance(meta.get(key), bool):
            raise IntegrityError(f"{path}: field {key!r} missing or not {kind.__name__}")
    if meta["format_version"] != FORMAT_VERSION:
        raise IntegrityError(f"{path}: format_version {meta['format_version']}, this version reads {FORMAT_VERSION}")
    if meta["kind"] not in KINDS:
        raise IntegrityError(f"{path}: kind {meta['kind']!r} is none of {', '.join(KINDS)}")
    needed = {"hnsw": ("ef_search",), "ivf": ("nprobe",)}.get(meta["kind"], ())
    if not all(isinstance(meta["params"].get(p), int) and meta["params"][p] > 0 for p in needed):
        raise IntegrityError(f"{path}: params must give {', '.join(needed)} as positive whole numbers")
    return meta


def _last_words(exc: BaseException) -> str:
    """faiss's message without its C++ location prefix."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text.rsplit("Error: ", 1)[-1][:200]
