"""A small engine for the service's tests: it answers from what it is told, so a
test can see that the app passed the right things (the user's pseudonym, the live
history, context, filters) and that events change the next answer.

`FakeEngine` knows the items of a package's items.parquet when loaded from one, else
i1..i20. Its answer: the items of the query's history, newest first, then the rest of
its catalogue in order; `fallback` is None for a user with history, "session" for an
anonymous visitor with session events, "popular" otherwise. Scores fall from 1.
"""

from __future__ import annotations

import sys
import time
import types
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ITEMS = [f"i{n}" for n in range(1, 21)]


@dataclass
class FakeAnswer:
    items: list[str]
    scores: list[float]
    fallback: str | None
    stages: dict[str, float]
    explain: dict[str, Any] | None = None


@dataclass
class FakeEngine:
    name: str = "fake"
    version: int | None = 1
    items: list[str] = field(default_factory=lambda: list(ITEMS))
    queries: list[Any] = field(default_factory=list)

    @classmethod
    def load(cls, package_dir: Path, cfg: Any = None, delay_s: float = 0.0) -> FakeEngine:
        import polars as pl

        from recsys_cli.registry.package import ITEMS as ITEMS_FILE
        from recsys_cli.registry.package import verify_package

        manifest = verify_package(package_dir)  # what the real engine does first
        time.sleep(delay_s)  # a slow load widens the window a reload must survive
        items = pl.read_parquet(Path(package_dir) / ITEMS_FILE)["item_id"].to_list()
        return cls(name=str(manifest.get("name")), items=sorted(items))

    def knows_item(self, item_id: str) -> bool:
        return item_id in self.items

    def recommend(self, query: Any) -> FakeAnswer:
        self.queries.append(query)
        recent: list[str] = []
        for event in reversed(list(query.history)):
            if event.item not in recent:
                recent.append(event.item)
        items = [*recent, *(i for i in self.items if i not in recent)][: query.k]
        if query.user is not None and query.history:
            fallback = None
        elif query.history:
            fallback = "session"
        else:
            fallback = "popular"
        explain = {"history": len(query.history), "hour": query.context.hour} if query.explain else None
        stages = {"retrieval": 0.001, "scoring": 0.002, "rerank": 0.0005}
        return FakeAnswer(items, [1.0 - i / 100 for i in range(len(items))], fallback, stages, explain)


def install_engine_stub() -> None:
    """Until serving/engine.py exists: a module with its `Query` and `Context` as the
    app builds them (the real module replaces this the moment it lands)."""
    try:
        import recsys_cli.serving.engine  # noqa: F401
    except ImportError:
        stub = types.ModuleType("recsys_cli.serving.engine")

        @dataclass
        class Context:
            hour: int | None = None
            segments: dict[str, str] = field(default_factory=dict)

        @dataclass
        class Query:
            user: str | None
            k: int
            history: list[Any]
            context: Context
            filters: Any
            explain: bool = False

        stub.Context, stub.Query = Context, Query  # type: ignore[attr-defined]
        sys.modules["recsys_cli.serving.engine"] = stub
