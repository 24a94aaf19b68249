"""How the closed-form models read interaction weights.

The feature set's weights mix event types and time decay (views 1, carts 3,
purchases 5, halved every 30 days): their scale depends on the data's age and
its event mix, not on anything a model should trust. Every option here except
`raw` is scale-free: multiplying the whole matrix by a constant changes nothing.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import scipy.sparse as sp

Weighting = Literal["raw", "binary", "log", "bm25", "tfidf"]
WEIGHTINGS: tuple[str, ...] = ("raw", "binary", "log", "bm25", "tfidf")

# BM25's term saturation and length normalisation, implicit's defaults.
BM25_K1, BM25_B = 100.0, 0.8


def reweight(matrix: sp.csr_matrix, how: str) -> sp.csr_matrix:
    """(n_users, n_items) weights -> the values a model fits on, a new matrix.

    - raw: as built by `recsys features`;
    - binary: 1 for every interaction (how often or how much no longer counts);
    - log: log(1 + w / mean w), dampening heavy pairs (many views of one item);
    - bm25, tfidf: as implicit's item-item models weigh them, each user down-weighted
      by how many items they touched (a visitor who clicks through the whole
      catalogue says little about which two items go together), on w / mean w.
    """
    out = matrix.astype(np.float32).tocsr(copy=True)
    out.eliminate_zeros()
    if how == "raw" or out.nnz == 0:
        return out
    if how == "binary":
        out.data[:] = 1.0
        return out
    out.data /= out.data.mean()
    if how == "log":
        out.data = np.log1p(out.data)
        return out
    if how in ("bm25", "tfidf"):
        return _user_idf_weighted(out, bm25=how == "bm25")
    raise ValueError(f"weighting must be one of {', '.join(WEIGHTINGS)}, got {how!r}")


def _user_idf_weighted(x: sp.csr_matrix, bm25: bool) -> sp.csr_matrix:
    """implicit's bm25_weight / tfidf_weight on the item x user matrix (users as terms,
    items as documents), returned as user x item."""
    coo = x.tocoo()
    per_user = np.bincount(coo.row, minlength=x.shape[0])
    idf = (np.log(x.shape[1]) - np.log1p(per_user)).astype(np.float32)
    if bm25:
        item_sums = np.asarray(x.sum(axis=0)).ravel()
        length_norm = (1.0 - BM25_B) + BM25_B * item_sums / max(float(item_sums.mean()), 1e-12)
        data = coo.data * (BM25_K1 + 1.0) / (BM25_K1 * length_norm[coo.col] + coo.data) * idf[coo.row]
    else:
        data = np.sqrt(coo.data) * idf[coo.row]
    return sp.csr_matrix((data.astype(np.float32), (coo.row, coo.col)), shape=x.shape)
