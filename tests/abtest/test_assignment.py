"""Hash assignment: deterministic, order-free, the configured split, and the same
numbers as a plain-Python FNV-1a + fmix64 written from the definition."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from recsys_cli.abtest import AbTestError
from recsys_cli.abtest.assignment import CONTROL, EXCLUDED, TREATMENT, Split, assign, sample_ratio_p, unit_hash

IDS = pl.Series([f"u{i}" for i in range(100_000)])


def reference_hash(user_id: str, salt: str) -> float:
    """One id at a time, straight from the definitions of FNV-1a 64 and fmix64."""
    mask = 2**64 - 1
    h = 0xCBF29CE484222325
    for byte in (salt + "\x1f" + user_id).encode():
        h = ((h ^ byte) * 0x100000001B3) & mask
    h ^= h >> 33
    h = (h * 0xFF51AFD7ED558CCD) & mask
    h ^= h >> 33
    h = (h * 0xC4CEB9FE1A85EC53) & mask
    h ^= h >> 33
    return (h >> 11) / 2.0**53


def test_the_vectorised_hash_is_the_reference_hash() -> None:
    ids = ["u1", "", "ü-ñ-😀", "a" * 70, "e1b58ffaed28a4ad9175"]
    got = unit_hash(pl.Series(ids), "exp-7")
    assert got.tolist() == [reference_hash(i, "exp-7") for i in ids]


def test_assignment_is_deterministic_and_does_not_depend_on_the_other_users() -> None:
    split = Split(0.5, 0.5)
    arms = assign(IDS, "salt", split)
    assert np.array_equal(arms, assign(IDS, "salt", split))
    order = np.random.default_rng(0).permutation(IDS.len())
    assert np.array_equal(assign(IDS.gather(order), "salt", split), arms[order])
    assert np.array_equal(assign(IDS.slice(500, 7), "salt", split), arms[500:507])


@pytest.mark.parametrize(("control", "treatment"), [(0.5, 0.5), (0.3, 0.2), (0.9, 0.1)])
def test_arms_match_the_configured_split(control: float, treatment: float) -> None:
    arms = assign(IDS, "salt", Split(control, treatment))
    n = IDS.len()
    for arm, share in ((CONTROL, control), (TREATMENT, treatment), (EXCLUDED, 1 - control - treatment)):
        tolerance = 4 * np.sqrt(max(share * (1 - share), 1e-12) / n)  # four binomial standard errors
        assert abs((arms == arm).mean() - share) <= tolerance + 1e-12


def test_growing_the_treatment_keeps_its_users_and_a_new_salt_reshuffles() -> None:
    small, large = assign(IDS, "s", Split(0.5, 0.1)), assign(IDS, "s", Split(0.5, 0.3))
    assert np.all(large[small == TREATMENT] == TREATMENT) and np.array_equal(small == CONTROL, large == CONTROL)
    other = assign(IDS, "another salt", Split(0.5, 0.5))
    same = (other == assign(IDS, "s", Split(0.5, 0.5))).mean()
    assert 0.48 < same < 0.52  # independent coin flips agree half the time


def test_bad_splits_and_null_ids_are_refused() -> None:
    with pytest.raises(AbTestError, match="sum to at most 1"):
        Split(0.7, 0.5)
    with pytest.raises(AbTestError, match="positive"):
        Split(0.0, 0.5)
    with pytest.raises(AbTestError, match="null user id"):
        unit_hash(pl.Series(["a", None]), "s")


def test_sample_ratio_mismatch_is_caught() -> None:
    split = Split(0.5, 0.5)
    assert sample_ratio_p(np.array([5_020, 4_980]), split) > 0.5
    assert sample_ratio_p(np.array([5_300, 4_700]), split) < 1e-3
    # Against a 0.2 / 0.05 split the arms are expected at 80% / 20%.
    assert sample_ratio_p(np.array([800, 200]), Split(0.2, 0.05)) == pytest.approx(1.0)
