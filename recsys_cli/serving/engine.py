"""One recommendation request, from a user and their live history to item ids.

The service (`serving/app.py`, `serving/service.py`) holds an `Engine` per loaded
package and calls `recommend` with a `Query`: the user's lake pseudonym, the
events the service received since the package's cutoff, the request's context
and filters. Three stages, each timed:

1. **retrieval**: a few hundred candidates. A two-stage package's generators
   propose theirs (embedding generators through the package's ANN indexes); a
   single model proposes its own top items the same way (`Recommender.candidates`).
   With live events, a model that can fold a history in (`score_history`: EASE,
   item-kNN, SASRec) scores the user again first.
2. **scoring**: the ranker's calibrated engagement probability of each candidate,
   or the single model's own scores.
3. **rerank**: the business rules (`serving/rules.py`), then popularity fills a
   short list (`serving/fallbacks.py`), held to the same filters and stock rule.

A user the model never met and who sent no events gets the popularity of their
segment and hour (request context), then global: `fallback` names which.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from recsys_cli.registry.package import Package, load_package
from recsys_cli.serving.catalogue import Catalogue
from recsys_cli.serving.fallbacks import Fallbacks
from recsys_cli.serving.rules import Filters, admissible, rerank
from recsys_cli.serving.state import LiveEvent

# Defaults of `serve.engine` (conf/serve/default.yaml).
ENGINE_DEFAULTS: dict[str, Any] = {
    "candidates": 200,  # items retrieved before scoring and rules (at least 3 x k)
    "hour_weight": 0.5,  # the hour-of-day table's share of a cold-start blend
    "exclude_events": ["purchase"],  # live events whose items are not recommended again
}


@dataclass
class Context:
    """What a request says about its visit: hour of day (UTC) and segment values
    (region, device, ...) for cold-start popularity."""

    hour: int | None = None
    segments: dict[str, str] = field(default_factory=dict)


@dataclass
class Query:
    user: str | None  # lake pseudonym; None for an anonymous visitor
    k: int
    history: Sequence[LiveEvent]  # live events after the package's cutoff, oldest first
    context: Context = field(default_factory=Context)
    filters: Filters = field(default_factory=Filters)
    explain: bool = False


@dataclass
class Answer:
    items: list[str]
    scores: list[float]
    fallback: str | None
    stages: dict[str, float]  # seconds per stage: retrieval, scoring, rerank
    explain: dict[str, Any] | None = None


class Engine:
    """A loaded package answering requests (module docstring). Thread-safe for
    reads: nothing a request does changes the engine."""

    def __init__(self, package: Package, rules: Any, settings: Mapping[str, Any] | None = None) -> None:
        from recsys_cli.registry.package_ann import MODEL_KEY

        self.package = package
        self.model = package.model
        self.rules = rules
        self.settings = {**ENGINE_DEFAULTS, **dict(settings or {})}
        self.catalogue = Catalogue.from_items(package.items)
        assert self.model.items is not None and self.model.users is not None
        if len(self.catalogue) != len(self.model.items):
            raise ValueError(
                f"{package.path}: the item table has {len(self.catalogue)} rows, the model {len(self.model.items)}"
            )
        self.fallbacks = Fallbacks.from_tables(package.fallbacks, self.catalogue, float(self.settings["hour_weight"]))
        self.user_index = {token: i for i, token in enumerate(self.model.users.tokens) if i > 0}
        self.exclude_events = frozenset(self.settings["exclude_events"])
        self.ranker = _ranker(self.model)
        # Embedding models retrieve through the package's own indexes, measured at export.
        for name, index in package.ann.items():
            target = self.model if name == MODEL_KEY else self._generator(name)
            if target is not None:
                target.derived["index"] = index

    @property
    def name(self) -> str:
        return self.package.name

    @property
    def version(self) -> int | None:
        value = self.package.manifest.get("version")
        return int(value) if isinstance(value, int) else None

    @classmethod
    def load(cls, package_dir: Path, cfg: Any = None) -> Engine:
        """The package in `package_dir`, verified file by file before anything is read
        (`load_package`), with the rules and engine settings of `cfg.serve`."""
        from omegaconf import OmegaConf

        from recsys_cli.schemas.serve_rules import Rules

        serve = getattr(cfg, "serve", None) if cfg is not None else None
        rules_cfg = OmegaConf.to_container(serve.rules, resolve=True) if serve is not None and "rules" in serve else {}
        engine_cfg = serve.get("engine") if serve is not None else None
        settings = OmegaConf.to_container(engine_cfg, resolve=True) if engine_cfg is not None else {}
        return cls(load_package(package_dir), Rules.model_validate(rules_cfg or {}), settings)  # type: ignore[arg-type]

    def warm(self) -> float:
        """Answer a known user, the same user with a live event, and a visitor nobody
        knows, before the first shopper does: the model builds some tables on first
        use (item-kNN's transposed neighbours, the prior's item order; a quarter of a
        second for a ranker package at 82k items), and a service that starts under
        load would queue requests behind them. Returns the seconds it took."""
        start = time.perf_counter()
        assert self.model.users is not None and self.model.items is not None
        known = next(iter(self.user_index), None)  # None: the model knows nobody
        queries = [Query(known, 10, []), Query(None, 10, [])]
        if len(self.model.items) > 1:  # the history path: a view of the first item
            event = LiveEvent(known or "", self.catalogue.ids(np.array([1], dtype=np.int64))[0], "view", time.time())
            queries.append(Query(known, 10, [event]))
        for query in queries:
            self.recommend(query)
        return time.perf_counter() - start

    def knows_item(self, item_id: str) -> bool:
        return bool(self.catalogue.item_index([item_id])[0] > 0)

    # ---- a request ------------------------------------------------------------------------------------------------

    def recommend(self, query: Query) -> Answer:
        clock = _Clock()
        user = self.user_index.get(query.user, 0) if query.user is not None else 0
        history = list(query.history)
        items = self.catalogue.item_index([e.item for e in history]) if history else np.zeros(0, np.int64)
        kinds = [e.event_type for e in history]
        known = items > 0
        exclude = np.unique(items[known & np.isin(kinds, list(self.exclude_events))]) if history else items
        n = max(int(self.settings["candidates"]), 3 * query.k)
        fallback: str | None = None
        explain: dict[str, Any] = {"user": "known" if user else "unknown", "history_events": int(known.sum())}

        if user == 0 and not known.any():
            candidates, scores = np.zeros(0, np.int64), np.zeros(0)
            clock.lap("retrieval")
        else:
            newest = max(e.ts for e in history) if history else None
            recency = max(time.time() - newest, 0.0) / 86_400 if newest is not None else None
            candidates, scores, how = self._scored(
                user, items[known], [k for k, ok in zip(kinds, known, strict=True) if ok], n, clock, recency
            )
            explain["scored_by"] = how
            if how == "popularity":
                fallback = "session: the model cannot use live events"
        keep = ~np.isin(candidates, exclude)
        candidates, scores = candidates[keep], scores[keep]
        # The rules order equal scores by item index; candidates come best first (a
        # ranker's equal probabilities already ordered by its raw scores), so they get
        # strictly falling ranking scores, a hair apart, and keep their model scores.
        ranking = scores - 1e-9 * np.arange(scores.size)
        now = time.time()
        reranked = rerank(candidates, ranking, query.k, self.catalogue, self.rules, query.filters, now, query.explain)
        answer_items = reranked.items
        # Each item's score as the model gave it (the ranker's engagement probability),
        # whatever a rule did to its place; `explain` shows what the rules did.
        given = dict(zip(candidates.tolist(), scores.tolist(), strict=True))
        answer_scores = np.asarray([given[i] for i in answer_items.tolist()], dtype=np.float64)
        if len(answer_items) < query.k:
            admit = partial(admissible, catalogue=self.catalogue, rules=self.rules, filters=query.filters)
            skip = np.concatenate([exclude, self._seen(user)])
            if len(answer_items) == 0:
                picked = self.fallbacks.pick(query.context.segments, query.context.hour, query.k, skip, admit)
            else:
                picked = self.fallbacks.top_up(answer_items, answer_scores, query.k, skip, admit)
            answer_items, answer_scores = picked.items, picked.scores
            fallback = picked.which if fallback is None or picked.which is None else f"{fallback}; {picked.which}"
        clock.lap("rerank")
        if query.explain:
            explain["candidates"] = int(len(candidates))
            explain["rules"] = reranked.explain
        return Answer(
            self.catalogue.ids(np.asarray(answer_items, dtype=np.int64)),
            [float(s) for s in answer_scores],
            fallback,
            clock.stages,
            explain if query.explain else None,
        )

    def _scored(
        self, user: int, items: np.ndarray, kinds: list[str], n: int, clock: _Clock, recency_days: float | None = None
    ) -> tuple[np.ndarray, np.ndarray, str]:
        """Candidates and their scores for a known user or a visitor with events, and
        how they were found; `recency_days`: since the newest live event."""
        users = np.array([user], dtype=np.int64)
        if items.size and self.ranker is not None:
            top, probability, _ = self.ranker.rank_history(user, items, kinds, recency_days)
            clock.lap("retrieval")  # candidates and their probabilities come together here
            clock.lap("scoring")
            return top[:n], probability[:n], "history"
        if items.size:
            vector = self.model.history_vector(user, items, kinds)
            index = self.model.derived.get("index") if vector is not None else None
            if vector is not None and index is not None:  # the package's ANN index
                seen = self._seen(user)
                found, found_scores = index.search(vector[None], n + seen.size)
                clock.lap("retrieval")
                keep = (found[0] > 0) & ~np.isin(found[0], seen)
                clock.lap("scoring")
                return found[0][keep][:n], found_scores[0][keep][:n].astype(np.float64), "history"
            scores = self.model.score_history(user, items, kinds)
            if scores is not None:
                clock.lap("retrieval")
                top, top_scores = self._top(scores, user, n)
                clock.lap("scoring")
                return top, top_scores, "history"
            if user == 0:
                clock.lap("retrieval")
                return np.zeros(0, np.int64), np.zeros(0), "popularity"
        if self.ranker is not None:
            return (*self._ranked(users, n, clock), "ranker")
        top, top_scores = self.model.candidates(users, n)
        clock.lap("retrieval")
        ok = np.isfinite(top_scores[0])
        clock.lap("scoring")
        return top[0][ok], top_scores[0][ok].astype(np.float64), "model"

    def _ranked(self, users: np.ndarray, n: int, clock: _Clock) -> tuple[np.ndarray, np.ndarray]:
        """The ranker's candidates (retrieval) and their calibrated probabilities
        (scoring), best first by (probability, raw score)."""
        from recsys_cli.models.calibration import apply_calibration
        from recsys_cli.models.candidates import candidate_pairs

        model = self.ranker
        assert model is not None and model.tables is not None
        pairs = candidate_pairs(model.generators, model.tables, users, model.params["n_candidates"])
        clock.lap("retrieval")
        raw = model._raw(pairs)
        probability = apply_calibration(model.params["calibration"], model.calibration, raw)
        order = np.lexsort((pairs.items, -raw, -probability))[:n]
        clock.lap("scoring")
        return pairs.items[order], probability[order]

    def _top(self, scores: np.ndarray, user: int, n: int) -> tuple[np.ndarray, np.ndarray]:
        scores = np.asarray(scores, dtype=np.float64).copy()
        scores[0] = -np.inf
        scores[self._seen(user)] = -np.inf
        n = min(n, scores.size - 1)
        top = np.argpartition(-scores, n - 1)[:n] if n > 0 else np.zeros(0, np.int64)
        top = top[np.lexsort((top, -scores[top]))]
        top = top[np.isfinite(scores[top])]
        return top.astype(np.int64), scores[top]

    def _seen(self, user: int) -> np.ndarray:
        seen = self.model.seen
        if user == 0 or seen is None:
            return np.zeros(0, np.int64)
        return seen[user].indices.astype(np.int64)

    def _generator(self, name: str) -> Any:
        prefix = "generators."
        if self.ranker is None or not name.startswith(prefix):
            return None
        return self.ranker.generators.get(name[len(prefix) :])


class _Clock:
    """Seconds spent in each stage of one request."""

    def __init__(self) -> None:
        self.stages: dict[str, float] = {}
        self._last = time.perf_counter()

    def lap(self, stage: str) -> None:
        now = time.perf_counter()
        self.stages[stage] = self.stages.get(stage, 0.0) + now - self._last
        self._last = now


def _ranker(model: Any) -> Any:
    import sys

    module = sys.modules.get("recsys_cli.models.ranker")
    return model if module is not None and isinstance(model, module.TwoStageRanker) else None
