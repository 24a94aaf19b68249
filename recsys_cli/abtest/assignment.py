"""Users to arms by a salted hash of their id, as experiment platforms do it.

A hash rather than a random draw: the arm of a user depends only on the salt and
the id, never on which other users exist or in what order they come, so a user
keeps one arm for the whole experiment and the assignment can be recomputed
anywhere. Polars' own `hash` may change between versions, so the hash is written
out here: 64-bit FNV-1a over the UTF-8 bytes of `salt + "\\x1f" + id`, then
MurmurHash3's 64-bit finaliser so that ids differing in one character land far
apart. A new salt re-randomises everyone, independently of the previous salt.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl
from scipy import stats

from recsys_cli.abtest import AbTestError

CONTROL, TREATMENT, EXCLUDED = 0, 1, -1
ARMS = ("control", "treatment")
SEPARATOR = "\x1f"  # unit separator: "ab" + "c" and "a" + "bc" hash apart

_FNV_OFFSET = np.uint64(0xCBF29CE484222325)
_FNV_PRIME = np.uint64(0x100000001B3)
_MIX_1 = np.uint64(0xFF51AFD7ED558CCD)
_MIX_2 = np.uint64(0xC4CEB9FE1A85EC53)
# Users hashed per block, so the byte matrix stays small for any number of users.
_BLOCK = 1 << 20


@dataclass(frozen=True)
class Split:
    """Shares of users in each arm; what is left (1 - control - treatment) stays out."""

    control: float = 0.5
    treatment: float = 0.5

    def __post_init__(self) -> None:
        shares = (self.control, self.treatment)
        if min(shares) <= 0 or sum(shares) > 1 + 1e-9:
            raise AbTestError(
                f"assignment: control ({self.control}) and treatment ({self.treatment}) must be positive "
                "shares that sum to at most 1"
            )

    def expected(self) -> np.ndarray:
        """Each arm's share of the users in the experiment."""
        shares = np.array([self.control, self.treatment])
        return shares / shares.sum()


def unit_hash(ids: pl.Series, salt: str) -> np.ndarray:
    """A uniform number in [0, 1) per id, fixed by (salt, id) alone.

    >>> u = unit_hash(pl.Series(["u1", "u2", "u1"]), "exp-1")
    >>> bool(u[0] == u[2]) and bool(u[0] != u[1]) and bool(((0 <= u) & (u < 1)).all())
    True
    """
    if ids.null_count():
        raise AbTestError(f"assignment: {ids.null_count()} null user id(s) cannot be assigned to an arm")
    ids = ids.cast(pl.String)
    seed = _fnv(np.full(1, _FNV_OFFSET), np.frombuffer((salt + SEPARATOR).encode(), dtype=np.uint8))[0]
    out = np.empty(ids.len(), dtype=np.float64)
    for start in range(0, ids.len(), _BLOCK):
        block = ids.slice(start, _BLOCK)
        out[start : start + block.len()] = _to_unit(_fmix64(_hash_block(block, seed)))
    return out


def assign(ids: pl.Series, salt: str, split: Split) -> np.ndarray:
    """CONTROL (0), TREATMENT (1) or EXCLUDED (-1) per id: control takes the hash
    range [0, control), treatment the next `treatment`, so growing the treatment
    share keeps every user already in treatment there."""
    u = unit_hash(ids, salt)
    arm = np.full(u.size, EXCLUDED, dtype=np.int8)
    arm[u < split.control] = CONTROL
    arm[(u >= split.control) & (u < split.control + split.treatment)] = TREATMENT
    return arm


def sample_ratio_p(counts: np.ndarray, split: Split) -> float:
    """Chi-square p-value of the users per arm against the configured split: a tiny
    value (sample ratio mismatch) means the assignment or the logging is broken and
    no metric of the experiment can be trusted."""
    counts = np.asarray(counts, dtype=np.float64)
    if counts.sum() == 0:
        return float("nan")
    return float(stats.chisquare(counts, counts.sum() * split.expected()).pvalue)


def _hash_block(ids: pl.Series, seed: np.uint64) -> np.ndarray:
    """FNV-1a of each id's bytes, continuing from `seed`: one pass per byte position,
    vectorised over the ids (ids are short, so that is a few dozen passes)."""
    lengths = ids.str.len_bytes().to_numpy().astype(np.int64)
    data = np.frombuffer(ids.str.join("").item().encode(), dtype=np.uint8)
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]) if lengths.size else lengths
    h = np.full(lengths.size, seed, dtype=np.uint64)
    for position in range(int(lengths.max(initial=0))):
        live = np.flatnonzero(lengths > position)
        h[live] = _fnv(h[live], data[starts[live] + position][:, None])
    return h


def _fnv(h: np.ndarray, byte_columns: np.ndarray) -> np.ndarray:
    """Fold byte columns (rows x bytes, or one row of bytes for every h) into h."""
    columns = np.atleast_2d(byte_columns)
    with np.errstate(over="ignore"):
        for j in range(columns.shape[1]):
            h = (h ^ columns[:, j].astype(np.uint64)) * _FNV_PRIME
    return h


def _fmix64(h: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        h = h ^ (h >> np.uint64(33))
        h = h * _MIX_1
        h = h ^ (h >> np.uint64(33))
        h = h * _MIX_2
        return h ^ (h >> np.uint64(33))


def _to_unit(h: np.ndarray) -> np.ndarray:
    """The top 53 bits as a double in [0, 1): every value exactly representable."""
    return (h >> np.uint64(11)).astype(np.float64) * 2.0**-53
