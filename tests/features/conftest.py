from __future__ import annotations

import polars as pl
import pytest

from recsys_cli.splits.global_temporal import GlobalTemporalSplitter
from tests.splits.conftest import events as _events  # noqa: F401  (the 15-event log)


@pytest.fixture
def events(_events: pl.LazyFrame) -> pl.LazyFrame:  # noqa: F811
    return _events


@pytest.fixture
def assigned(events: pl.LazyFrame) -> pl.LazyFrame:
    """20% validation from day 7, 20% test from day 9."""
    splitter = GlobalTemporalSplitter(val_fraction=0.2, test_fraction=0.2)
    return splitter.assign(events, splitter.folds(events)[0])
