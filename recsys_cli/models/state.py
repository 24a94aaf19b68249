"""Checks on the arrays a model folder holds, before any of them is used.

scipy trusts the index arrays of a sparse matrix it is handed: an index past the
last column, or an `indptr` that goes backwards, reads memory outside the arrays
and can crash the process (exit 139) or return garbage. numpy and torch check
their own indexing, but a factor table shorter than the vocabulary still fails
deep inside scoring. So every array read back is checked here for presence,
dtype, shape (against the vocabularies) and index range, and a problem is one
`StateError` line naming the tensor; `Recommender.load` adds the file.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from recsys_cli.errors import IntegrityError

State = Mapping[str, np.ndarray]


class StateError(ValueError):
    """A saved array is missing or does not fit the model (shape, dtype, index range)."""


def read_json(path: Path) -> dict[str, Any]:
    """A model folder's JSON file as a mapping, or one `IntegrityError` line."""
    from recsys_cli.registry.integrity import read_json_object

    return read_json_object(path, "retrain the run", missing="missing; the model folder is incomplete")


def read_tensors(path: Path) -> dict[str, np.ndarray]:
    """Every tensor of a safetensors file, or one `IntegrityError` line (missing,
    truncated or not a safetensors file)."""
    from safetensors import SafetensorError
    from safetensors.numpy import load_file

    if not path.is_file():
        raise IntegrityError(f"{path}: missing; the model folder is incomplete, retrain the run")
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError, TypeError) as exc:
        raise IntegrityError(f"{path}: not a readable weights file ({_first_line(exc)}); retrain the run") from None


def tensor(state: State, key: str, shape: tuple[int | None, ...], kind: str = "fiu") -> np.ndarray:
    """`state[key]` if it has `len(shape)` dimensions of the given sizes (None: any)
    and a dtype of one of the numpy `kind`s ("f" float, "i"/"u" integer, "b" bool)."""
    if key not in state:
        raise StateError(f"no tensor {key}")
    value = np.asarray(state[key])
    if value.dtype.kind not in kind:
        raise StateError(f"{key} has dtype {value.dtype}")
    if value.ndim != len(shape) or any(
        want is not None and got != want for got, want in zip(value.shape, shape, strict=True)
    ):
        expected = "(" + ", ".join("any" if s is None else str(s) for s in shape) + ")"
        raise StateError(f"{key} has shape {tuple(value.shape)}, expected {expected}")
    return value


def check_vector(state: State, key: str, size: int) -> np.ndarray:
    """A float vector of `size` finite values (one per item, say)."""
    value = tensor(state, key, (size,), "f")
    if not np.isfinite(value).all():
        raise StateError(f"{key} holds non-finite values")
    return value


def check_range(state: State, key: str, shape: tuple[int | None, ...], low: int, high: int) -> np.ndarray:
    """An integer array whose every value lies in [low, high): indices into a table of `high` rows."""
    value = tensor(state, key, shape, "iu")
    if value.size and (int(value.min()) < low or int(value.max()) >= high):
        raise StateError(f"{key} holds indices outside [{low}, {high})")
    return value


def check_codes(state: State, key: str, rows: int, cardinalities: tuple[int, ...]) -> np.ndarray:
    """A (rows, columns) table of categorical codes, column j indexing a table of cardinalities[j] rows."""
    codes = tensor(state, key, (rows, len(cardinalities)), "iu")
    if codes.size and ((codes < 0).any() or (codes >= np.asarray(cardinalities, np.int64)[None, :]).any()):
        raise StateError(f"{key} holds codes outside their embedding tables")
    return codes


def csr_tensors(prefix: str, matrix: sp.csr_matrix) -> dict[str, np.ndarray]:
    """A CSR matrix as the three tensors `check_csr` reads back: `<prefix>_data`,
    `_indices` and `_indptr` (indices as int64, whatever scipy chose)."""
    return {
        f"{prefix}_data": matrix.data,
        f"{prefix}_indices": matrix.indices.astype(np.int64),
        f"{prefix}_indptr": matrix.indptr.astype(np.int64),
    }


def check_csr(state: State, prefix: str, shape: tuple[int, int], data: bool = True) -> sp.csr_matrix:
    """A CSR matrix of `shape` from `<prefix>_indptr`, `_indices` (and `_data`, or
    ones when `data` is False), refused unless indptr starts at 0, never goes
    back, ends at the number of entries, and every column index is in range."""
    rows, cols = shape
    indptr = tensor(state, f"{prefix}_indptr", (rows + 1,), "iu").astype(np.int64)
    indices = tensor(state, f"{prefix}_indices", (None,), "iu").astype(np.int64)
    if indptr[0] != 0 or indptr[-1] != indices.size or (np.diff(indptr) < 0).any():
        raise StateError(f"{prefix}_indptr is not a valid row pointer for {indices.size} entries")
    if indices.size and (indices.min() < 0 or indices.max() >= cols):
        raise StateError(f"{prefix}_indices holds columns outside [0, {cols})")
    if data:
        values = tensor(state, f"{prefix}_data", (indices.size,), "f")
        if not np.isfinite(values).all():
            raise StateError(f"{prefix}_data holds non-finite values")
    else:
        values = np.ones(indices.size, np.float32)
    return sp.csr_matrix((values, indices, indptr), shape=shape)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:200] if text else type(exc).__name__
