"""Shared fixtures: tiny raw logs written by hand, and a composed ingest config."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from omegaconf import DictConfig

from recsys_cli.config import compose

HEADER = "user_id,item_id,event_type,ts,price,quantity,email\n"
# Ten rows, hand-written: 2 duplicates of earlier rows, 3 invalid, 5 valid + 2 more days.
GOOD_ROWS = [
    "u1,i1,view,2026-01-01T10:00:00Z,,,a@x.org",
    "u1,i2,add_to_cart,2026-01-01T10:05:00Z,9.5,1,a@x.org",
    "u2,i1,purchase,2026-01-01T11:00:00Z,10.0,2,b@x.org",
    "u2,i3,view,2026-01-02T09:00:00Z,,,b@x.org",
    "u3,i2,view,2026-01-03T08:00:00Z,,,c@x.org",
]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The tests marked `minutes` first, every other order kept. With a file per
    worker (`make test`), a file of minutes started last would leave the other
    worker idle for as long as it runs."""
    items.sort(key=lambda item: item.get_closest_marker("minutes") is None)


@pytest.fixture
def raw_dir(tmp_path: Path) -> Path:
    return tmp_path / "raw" / "generic"


@pytest.fixture
def write_events(raw_dir: Path) -> Callable[..., Path]:
    def write(rows: list[str] | str | bytes, name: str = "events.csv", header: str = HEADER) -> Path:
        raw_dir.mkdir(parents=True, exist_ok=True)
        path = raw_dir / name
        if isinstance(rows, bytes):
            path.write_bytes(rows)
        elif isinstance(rows, str):
            path.write_text(rows)
        else:
            path.write_text(header + "".join(r + "\n" for r in rows))
        return path

    return write


@pytest.fixture
def ingest_cfg(tmp_path: Path) -> Callable[..., DictConfig]:
    def make(*overrides: str) -> DictConfig:
        return compose("ingest", ["data=generic", f"paths.data_dir={tmp_path}", *overrides])

    return make


@pytest.fixture
def lake_dir(tmp_path: Path) -> Path:
    return tmp_path / "lake" / "generic"
