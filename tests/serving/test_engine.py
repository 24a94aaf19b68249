"""The engine behind `recsys serve`: one request, from a user and their live events
to item ids, on real packages exported from a small synthetic shop."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from recsys_cli.config import compose
from recsys_cli.serving.engine import Context, Engine, Query
from recsys_cli.serving.rules import Filters
from recsys_cli.serving.state import LiveEvent
from tests.registry.package_shop import exported

Loaded = Callable[..., Engine]


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Loaded:
    """An engine per (model, rules), its package exported once per model."""
    packages: dict[str, Path] = {}

    def get(name: str, rules: str = "none") -> Engine:
        if name not in packages:
            packages[name] = exported(tmp_path_factory, name)
        return Engine.load(packages[name], compose("serve", [f"serve/rules={rules}"]))

    return get


def known_user(engine: Engine, n: int = 0) -> tuple[str, int]:
    assert engine.model.users is not None
    seen = np.diff(engine.model.seen.indptr) if engine.model.seen is not None else None
    index = int(np.flatnonzero(seen > 2)[n]) if seen is not None else 1
    return engine.model.users.tokens[index], index


def events(user: str | None, items: list[str], kind: str = "view") -> list[LiveEvent]:
    return [LiveEvent(user or "anonymous", item, kind, 1.8e9 + i) for i, item in enumerate(items)]


@pytest.mark.parametrize("name", ["ease", "als", "ranker_lgbm", "item_knn"])
def test_a_known_user_gets_the_models_own_top_k_without_rules(engine: Loaded, name: str) -> None:
    e = engine(name)
    user, index = known_user(e)
    answer = e.recommend(Query(user, 10, []))
    top, _ = e.model.recommend(np.array([index]), 10)
    assert answer.items == e.catalogue.ids(top[0])
    assert answer.fallback is None
    assert set(answer.stages) == {"retrieval", "scoring", "rerank"}
    if name == "ranker_lgbm":  # engagement probabilities
        assert all(0.0 <= s <= 1.0 for s in answer.scores)


def test_an_unknown_user_without_events_gets_popularity_named_as_the_fallback(engine: Loaded) -> None:
    e = engine("ease")
    answer = e.recommend(Query("never-seen-pseudonym", 5, [], Context(hour=14, segments={"region": "nowhere"})))
    assert len(answer.items) == 5
    assert answer.fallback is not None and "hour:14" in answer.fallback
    assert answer.scores == sorted(answer.scores, reverse=True)


@pytest.mark.parametrize("name", ["ease", "ranker_lgbm"])
def test_a_session_only_visitor_is_scored_from_their_events(engine: Loaded, name: str) -> None:
    e = engine(name)
    viewed = e.catalogue.ids(np.array([5, 6, 7]))
    cold = e.recommend(Query(None, 10, []))
    session = e.recommend(Query(None, 10, events(None, viewed), explain=True))
    assert session.fallback is None
    assert session.explain is not None and session.explain["scored_by"] == "history"
    assert session.items != cold.items


@pytest.mark.parametrize("name", ["ease", "als", "sasrec", "ranker_lgbm"])
def test_live_events_change_a_known_users_next_answer_and_purchases_are_not_offered_again(
    engine: Loaded, name: str
) -> None:
    e = engine(name)
    user, _ = known_user(e)
    before = e.recommend(Query(user, 10, []))
    bought = before.items[0]
    after = e.recommend(Query(user, 10, events(user, [bought], "purchase")))
    assert bought not in after.items
    assert after.items != before.items


def test_a_model_that_cannot_fold_events_in_answers_a_visitor_with_popularity_and_says_so(engine: Loaded) -> None:
    e = engine("popularity")
    answer = e.recommend(Query(None, 5, events(None, e.catalogue.ids(np.array([3]))), explain=True))
    assert len(answer.items) == 5
    assert answer.fallback is not None and answer.fallback.startswith("session")


def test_request_filters_and_rules_shape_the_answer(engine: Loaded) -> None:
    e = engine("ease", rules="default")
    user, _ = known_user(e)
    category = str(e.package.items["category"].drop_nulls().mode()[0])
    answer = e.recommend(Query(user, 8, [], filters=Filters(categories=[category]), explain=True))
    chosen = e.catalogue.item_index(answer.items)
    names = e.catalogue.names("category", e.catalogue.category[chosen])
    assert answer.items and all(name == category for name in names)
    assert answer.explain is not None and "rules" in answer.explain


def test_unknown_item_ids_are_not_known(engine: Loaded) -> None:
    e = engine("ease")
    assert not e.knows_item("no-such-item")
    assert e.knows_item(e.catalogue.ids(np.array([1]))[0])


def test_the_package_lineage_names_the_lakes_key_by_fingerprint_only(engine: Loaded) -> None:
    pii = engine("ease").package.lineage["pii"]
    assert set(pii) == {"key_fingerprint", "development_key", "key_env"}
    assert len(pii["key_fingerprint"]) == 16 and pii["development_key"] is True


@pytest.mark.parametrize("name", ["ranker_lgbm", "item_knn"])
def test_warming_builds_the_models_lazy_tables_and_changes_no_answer(engine: Loaded, name: str) -> None:
    cold, warmed = engine(name), engine(name)
    user, _ = known_user(cold)
    seconds = warmed.warm()
    model = warmed.ranker.generators["item_knn"] if name == "ranker_lgbm" else warmed.model
    assert seconds > 0 and "sim_t" in model.derived  # built before any shopper asked
    for query in (Query(user, 10, []), Query(None, 5, events(None, cold.catalogue.ids(np.array([2, 3]))))):
        assert warmed.recommend(query).items == cold.recommend(query).items


def test_a_ranker_packages_user_counts_and_recency_follow_live_events(engine: Loaded) -> None:
    """The rule is found from the real feature set's column names (features/aggregates.py):
    a renamed column there would silently freeze the live features."""
    from recsys_cli.data.schema import EVENT_TYPES
    from recsys_cli.models.live_features import LiveUserFeatures

    e = engine("ranker_lgbm")
    live = LiveUserFeatures.from_array(e.ranker.tables.user_live)
    per_event = live.increments.sum(axis=1)
    assert per_event[EVENT_TYPES.index("view")] >= 2  # events_total and at least one window's views
    assert per_event[EVENT_TYPES.index("purchase")] >= 2 and live.recency.sum() == 1
