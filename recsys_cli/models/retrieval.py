"""Each user's top-n items without scoring the whole catalogue.

`Recommender.score` returns a dense row per user, and a top-n over it costs
users x items: at 10M events (89k items, 46k users) the ranker's candidate
generators spent most of its fit there, and its cost grew faster than its data.
Most retrieval models do not need the dense row. Their score is a shared prior
plus a sparse, non-negative part per user:

    score(u, i) = prior(i) + part(u, i),  part >= 0 and zero for most items

(popularity: the prior alone; item-kNN: part = history x neighbours, prior 0;
recently viewed and item transitions: a small popularity prior under a sparse
profile). Then the exact top-n is among the items the part reaches and the
first n + |seen(u)| items of the prior's order: an item outside both scores its
prior, and at least n unseen items of that list score as much or more, ties
going to the lower index as in `models.topk`. So the lists are the dense ones,
found at a cost that grows with histories and neighbour lists, not with the
catalogue. Embedding models (an inner product of user and item vectors) are
scored densely, one matrix product and a top-k, below `ANN_FROM` items; above,
through a faiss index whose search is widened until it recalls `min_recall` of
the exact top-n on a sample of users, where it then scans a small share of the
catalogue (`_index_pays`). Every other model keeps the dense path.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypeGuard

import numpy as np
import scipy.sparse as sp

if TYPE_CHECKING:
    from recsys_cli.models.base import Recommender

# Users scored densely at once on the fallback path: about 2^22 floats per batch.
_DENSE_FLOATS = 1 << 22
# Catalogues smaller than this are scored densely, and so is a batch whose pairs
# would exceed DENSE_SHARE of its dense matrix: sorting pairs costs about twenty
# times a dense score. Item-kNN's top 100 for 2,048 users: 0.17 CPU s dense, 3.3 s
# by pairs on a 1M-event shop (7.8k items); 3.4 s dense, 14.8 s by pairs, 5.2 s
# switching at 5% on a 10M-event one (82k items).
DENSE_BELOW = 20_000
DENSE_SHARE = 0.01
# Embedding models are scored densely (one matrix product and a top-k) below this
# many items: 0.26 ms a user for ALS at 82k items, where an IVF index first costs
# its k-means and a recall check on every fit (10 s of a ranker's fit at 24k items,
# refitted at each labelled window) and then needed every list for 95% recall.
ANN_FROM = 200_000
# An IVF index pays only where it scans a small share of its lists: scanning all of
# them (ALS at 82k items needed every list for 95% recall of its top 100) cost
# 3.7 ms a user against 0.2 ms for a dense BLAS row and its top-k.
IVF_MAX_SHARE = 1 / 8
_SPARSE_BATCH = 256


class SparseScores:
    """Mixin for a `Recommender` whose score is `prior(i) + part(u, i)` with a
    sparse, non-negative part (module docstring). `_part` gives the part's rows;
    a model whose part is cheaper to reach than to write out (category affinity)
    overrides `_proposals` and `_pair_scores` instead. A subclass whose score is
    not of that form sets `sparse_scores = False`."""

    sparse_scores = True

    def _prior(self) -> np.ndarray:
        """(n_items,) the score of an item the user's part does not reach."""
        raise NotImplementedError

    def _part(self, users: np.ndarray) -> sp.csr_matrix:
        """(len(users), n_items) the non-negative user part, for known users."""
        raise NotImplementedError

    def _proposals(self, users: np.ndarray, depth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(row, item) pairs, row a position in `users`, that may score above their
        prior; items a user's part does not reach need not be listed. `depth` is how
        many items of each user's list the caller may keep (n + the user's seen)."""
        part = self._part(users).tocoo()
        return part.row.astype(np.int64), part.col.astype(np.int64)

    def _pair_scores(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        """float64 score of each (user, item) pair, for known users."""
        prior = np.asarray(self._prior(), dtype=np.float64)
        unique, row = np.unique(users, return_inverse=True)
        part = self._parts_of(unique)
        if isinstance(part, np.ndarray):  # dense rows, the prior already in
            return part[row, items].astype(np.float64)
        return prior[items] + sparse_lookup(part, row, items)

    def _parts_of(self, users: np.ndarray) -> sp.csr_matrix | np.ndarray:
        """`_part(users)` for sorted unique users, from the rows `candidates` computed
        last when they hold them all: a ranker asks for a batch's candidates, then
        for its pairs' scores, and the part (item-kNN's history x neighbours) is the
        cost of both. Where `candidates` scored densely, those rows come back dense,
        prior included (float32, as `score` gives them)."""
        derived: dict[str, Any] = self.derived  # type: ignore[attr-defined]
        last = derived.get("last_part")
        if last is not None:
            held, part = last
            at = np.searchsorted(held, users)
            if at.size and (at < held.size).all() and (held[np.minimum(at, held.size - 1)] == users).all():
                return part[at]
        return self._part(users)


def sparse_lookup(matrix: sp.csr_matrix, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """float64 `matrix[rows[j], cols[j]]` for every j (0 where not stored), by
    sorted keys instead of fancy indexing, which densifies."""
    m = matrix.tocsr()
    m.sum_duplicates()
    stored_rows = np.repeat(np.arange(m.shape[0], dtype=np.int64), np.diff(m.indptr))
    keys = stored_rows * m.shape[1] + m.indices.astype(np.int64)  # sorted: csr rows, sorted indices
    wanted = np.asarray(rows, dtype=np.int64) * m.shape[1] + np.asarray(cols, dtype=np.int64)
    at = np.searchsorted(keys, wanted)
    found = at < keys.size
    found[found] = keys[at[found]] == wanted[found]
    out = np.zeros(wanted.size)
    out[found] = m.data[at[found]]
    return out


def candidates(model: Recommender, users: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """(len(users), n) the top-n unseen items of each user, best first, and their
    float32 scores; rows with fewer are padded with item 0 at -inf. The unknown
    user (index 0) gets popularity, as `score` gives it."""
    users = np.asarray(users, dtype=np.int64)
    n_items = _n_items(model)
    n = max(0, min(n, n_items - 1))
    if n_items >= DENSE_BELOW and _is_sparse(model):
        return _sparse(model, users, n)
    if n_items >= ANN_FROM and _embedding(model) and _index_pays(_ann_index(model)):
        return _embedded(model, users, n)
    return _dense(model, users, n)


def pair_scores(model: Recommender, users: np.ndarray, items: np.ndarray) -> np.ndarray:
    """float32 `score(users[j])[items[j]]` for every pair j, without dense rows
    where the model allows it."""
    users = np.asarray(users, dtype=np.int64)
    items = np.asarray(items, dtype=np.int64)
    out = np.zeros(users.size, dtype=np.float64)
    cold = users == 0
    assert model.popularity is not None
    out[cold] = model.popularity[items[cold]]
    known = ~cold
    if not known.any():
        return out.astype(np.float32)
    if _is_sparse(model):
        out[known] = model._pair_scores(users[known], items[known])
    elif _embedding(model):
        vectors = model.item_vectors()
        assert vectors is not None
        out[known] = (model.user_vectors(users[known]) * vectors[items[known]]).sum(axis=1, dtype=np.float64)
    else:
        unique, row = np.unique(users[known], return_inverse=True)
        out[known] = model.score(unique)[row, items[known]]
    return out.astype(np.float32)


# -- the three paths ------------------------------------------------------------------------------------------------


def _sparse(model: SparseScores, users: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    parts = [_sparse_batch(model, users[i : i + _SPARSE_BATCH], n) for i in range(0, users.size, _SPARSE_BATCH)]
    if not parts:
        return np.zeros((0, n), np.int64), np.zeros((0, n), np.float32)
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def _sparse_batch(model: SparseScores, users: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    recommender: Any = model
    n_items = _n_items(recommender)
    seen = seen_rows(recommender, users)
    depth = n + np.diff(seen.indptr).astype(np.int64)
    known = np.flatnonzero(users > 0)
    # The prior's first depth(u) items for every user; the unknown user's list is
    # popularity's, which is all `score` gives it.
    prior_rows, prior_items = heads(item_order(recommender, "prior", model._prior()), depth, users > 0)
    cold = np.flatnonzero(users == 0)
    if cold.size:
        assert recommender.popularity is not None
        c_rows, c_items = heads(item_order(recommender, "popularity", recommender.popularity), depth[cold], None)
        prior_rows = np.concatenate([prior_rows, cold[c_rows]])
        prior_items = np.concatenate([prior_items, c_items])
    own_proposals = type(model)._proposals is not SparseScores._proposals
    if own_proposals:
        rows_p, items_p = model._proposals(users[known], depth[known])
        rows_p = known[rows_p]
    else:
        asked = users[known]
        part = model._part(asked).tocsr()
        reusable = asked.size > 0 and bool((np.diff(asked) > 0).all())  # sorted and unique: for `_parts_of`
        # Where a batch's part reaches much of the catalogue (long histories, popular
        # items in many neighbour lists), scoring it densely is cheaper than sorting
        # the pairs; decided before the part's entries are sorted, which alone cost
        # more than the dense rows (1 ms of item-kNN's 2 ms for one user at 82k items).
        if part.nnz + prior_rows.size > DENSE_SHARE * users.size * n_items:
            # The part's dense rows plus the prior are `score`'s.
            dense = _dense_part(part, np.asarray(model._prior()))
            if reusable:
                recommender.derived["last_part"] = (asked, dense)
            if cold.size:
                scores = np.empty((users.size, n_items), dtype=np.float32)
                scores[known] = dense
                scores[cold] = recommender.popularity
            else:
                scores = dense.copy()  # top_k writes into it; the part is kept as scored
            return recommender.top_k(scores, users, n)
        part.sum_duplicates()
        if reusable:
            recommender.derived["last_part"] = (asked, part)
        coo = part.tocoo()
        rows_p, items_p = known[coo.row], coo.col.astype(np.int64)
    if own_proposals and rows_p.size + prior_rows.size > DENSE_SHARE * users.size * n_items:
        return _dense(recommender, users, n)
    rows = np.concatenate([rows_p, prior_rows])
    items = np.concatenate([items_p, prior_items])
    if own_proposals:
        keep = _unseen(rows, items, seen, n_items)
        rows, items = rows[keep], items[keep]
        scores = pair_scores(recommender, users[rows], items)
    else:
        prior = np.asarray(model._prior(), dtype=np.float64)
        values = np.concatenate(
            [coo.data.astype(np.float64), sparse_lookup(part, np.searchsorted(known, prior_rows), prior_items)]
        )
        # rows of `part` are positions in `known`: the prior heads of cold rows read nothing
        values[rows_p.size :][users[prior_rows] == 0] = 0.0
        keep = _unseen(rows, items, seen, n_items)
        rows, items, values = rows[keep], items[keep], values[keep]
        scores = np.where(users[rows] > 0, prior[items] + values, recommender.popularity[items]).astype(np.float32)
    return pack(rows, items, scores, users.size, n)


def _dense_part(part: sp.csr_matrix, prior: np.ndarray) -> np.ndarray:
    """float32 dense rows of `part` plus `prior`, added in place where both are
    float32 (the same sums as `part.toarray() + prior`) and skipped where the prior
    is zero (item-kNN's)."""
    dense = part.toarray()
    if dense.dtype != np.float32 or prior.dtype != np.float32:
        return np.asarray(dense + prior, dtype=np.float32)
    if prior.any():
        dense += prior
    return dense


def _embedded(model: Recommender, users: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    n_items = _n_items(model)
    seen = seen_rows(model, users)
    seen_count = np.diff(seen.indptr).astype(np.int64)
    index = _ann_index(model)
    rows_all, items_all = [], []
    known = np.flatnonzero(users > 0)
    if known.size and n > 0:
        # Users with long histories ask for more neighbours: sort by how many, so a
        # batch's search depth is near each of its users' own.
        order = known[np.argsort(seen_count[known], kind="stable")]
        vectors = model.user_vectors(users[order])
        for start in range(0, order.size, 1024):
            part = order[start : start + 1024]
            k = int(min(n_items - 1, n + seen_count[part].max()))
            ids, _ = index.search(vectors[start : start + 1024], k)  # item indices, -1 past the found
            row = np.repeat(part, ids.shape[1])
            flat = ids.ravel()
            ok = flat > 0
            rows_all.append(row[ok])
            items_all.append(flat[ok])
    cold = np.flatnonzero(users == 0)
    if cold.size:
        assert model.popularity is not None
        c_rows, c_items = heads(item_order(model, "popularity", model.popularity), n + seen_count[cold], None)
        rows_all.append(cold[c_rows])
        items_all.append(c_items)
    rows = np.concatenate(rows_all) if rows_all else np.zeros(0, np.int64)
    items = np.concatenate(items_all) if items_all else np.zeros(0, np.int64)
    keep = _unseen(rows, items, seen, n_items)
    rows, items = rows[keep], items[keep]
    scores = pair_scores(model, users[rows], items)
    return pack(rows, items, scores, users.size, n)


def _dense(model: Recommender, users: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    batch = max(8, _DENSE_FLOATS // max(_n_items(model), 1))
    tops, scores = [], []
    for start in range(0, users.size, batch):
        part = users[start : start + batch]
        top, score = model.top_k(model.score(part), part, n)
        tops.append(top)
        scores.append(score)
    if not tops:
        return np.zeros((0, n), np.int64), np.zeros((0, n), np.float32)
    return np.concatenate(tops), np.concatenate(scores).astype(np.float32)


# -- helpers ----------------------------------------------------------------------------------------------------------


def _n_items(model: Recommender) -> int:
    assert model.items is not None
    return len(model.items)


def _is_sparse(model: Any) -> TypeGuard[SparseScores]:
    return isinstance(model, SparseScores) and model.sparse_scores


def _embedding(model: Recommender) -> bool:
    return type(model)._item_vectors is not _base_item_vectors() and model.item_vectors() is not None


def _base_item_vectors() -> Any:
    from recsys_cli.models.base import Recommender

    return Recommender._item_vectors


def seen_rows(model: Recommender, users: np.ndarray) -> sp.csr_matrix:
    n_items = _n_items(model)
    if model.seen is None:
        return sp.csr_matrix((users.size, n_items), dtype=np.float32)
    return model.seen[users].tocsr()


def item_order(model: Any, name: str, values: np.ndarray) -> np.ndarray:
    """Items 1.. by (value descending, index ascending), cached on the model: the
    prior does not change once fitted."""
    cache = model.derived
    name = f"order:{name}"
    if name not in cache:
        values = np.asarray(values, dtype=np.float64)
        order = np.lexsort((np.arange(values.size), -values))
        cache[name] = order[order != 0]
    return cache[name]


def heads(order: np.ndarray, depth: np.ndarray, mask: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """(row, item) for the first depth[row] items of `order`, for rows in `mask`."""
    depth = np.minimum(depth, order.size)
    if mask is not None:
        depth = np.where(mask, depth, 0)
    rows = np.repeat(np.arange(depth.size, dtype=np.int64), depth)
    starts = np.repeat(np.cumsum(depth) - depth, depth)
    return rows, order[np.arange(rows.size) - starts]


def _unseen(rows: np.ndarray, items: np.ndarray, seen: sp.csr_matrix, n_items: int) -> np.ndarray:
    """Which pairs are neither the unknown item nor a row's seen item (bool): a
    binary search in the seen pairs' sorted keys, no sort of the pairs."""
    seen = seen.tocsr()
    seen.sum_duplicates()
    seen_rows_ = np.repeat(np.arange(seen.shape[0], dtype=np.int64), np.diff(seen.indptr))
    seen_keys = seen_rows_ * n_items + seen.indices.astype(np.int64)
    keys = rows * n_items + items
    at = np.minimum(np.searchsorted(seen_keys, keys), max(seen_keys.size - 1, 0))
    hit = seen_keys[at] == keys if seen_keys.size else np.zeros(keys.size, bool)
    return (items != 0) & ~hit


def without(
    rows: np.ndarray, items: np.ndarray, seen: sp.csr_matrix, taken_rows: np.ndarray, taken: np.ndarray, n_items: int
) -> tuple[np.ndarray, np.ndarray]:
    """The (row, item) pairs that are neither a row's seen item nor among the
    (taken_rows, taken) pairs, in their order."""
    s = seen.tocoo()
    drop = np.concatenate([s.row.astype(np.int64) * n_items + s.col, taken_rows * n_items + taken])
    keep = ~np.isin(rows * n_items + items, drop)
    return rows[keep], items[keep]


def pack(
    rows: np.ndarray,
    items: np.ndarray,
    scores: np.ndarray,
    n_rows: int,
    n: int,
    secondary: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Each row's n best pairs by (score desc, secondary desc, item asc) as
    (n_rows, n) item and float32 score arrays, padded with item 0 at -inf."""
    keys = (items,) if secondary is None else (items, -np.asarray(secondary, dtype=np.float64))
    order = np.lexsort((*keys, -scores.astype(np.float64), rows))
    rows, items, scores = rows[order], items[order], scores[order]
    # A pair proposed twice (by the user's part and the prior's head) scores the same
    # both times, so its copies are neighbours here: keep one.
    once = np.ones(rows.size, bool)
    once[1:] = (rows[1:] != rows[:-1]) | (items[1:] != items[:-1])
    rows, items, scores = rows[once], items[once], scores[once]
    position = np.arange(rows.size) - np.searchsorted(rows, rows, side="left")
    keep = position < n
    top = np.zeros((n_rows, n), dtype=np.int64)
    out = np.full((n_rows, n), -np.inf, dtype=np.float32)
    top[rows[keep], position[keep]] = items[keep]
    out[rows[keep], position[keep]] = scores[keep]
    return top, out


def _index_pays(index: Any) -> bool:
    """Whether searching `index` beats scoring every item: an approximate index
    that, widened to its recall, still looks at a small part of the catalogue."""
    if index.kind == "ivf":
        return bool(index.params["nprobe"] <= IVF_MAX_SHARE * index.params["nlist"])
    return index.kind != "exact"


def _ann_index(model: Recommender) -> Any:
    """The model's item vectors in a faiss index (items 1..), built once per fit."""
    cached = model.derived.get("index")
    if cached is not None:
        return cached
    from recsys_cli.serving.ann import AnnIndex, AnnSpec, widen_to_recall

    vectors = model.item_vectors()
    assert vectors is not None
    spec = AnnSpec()  # conf/ann/'s defaults; a package brings its own, measured index
    index = AnnIndex.build(vectors, spec)
    if index.kind != "exact":
        assert model.users is not None
        rng = np.random.default_rng(0)
        sample = rng.choice(np.arange(1, len(model.users)), size=min(1000, len(model.users) - 1), replace=False)
        widen_to_recall(index, model.user_vectors(np.sort(sample)), spec)
    model.derived["index"] = index
    return index
