"""The ranker's columns are named, and every name falls in exactly one group.

The groups are rules over column names, so they must hold on the tables the
feature step writes for any data set: the synthetic shop (prices, brands,
launch dates, demographics) and MovieLens (release years, occupations, ratings).
"""

from __future__ import annotations

import pytest

from recsys_cli.errors import ConfigError
from recsys_cli.models.ranker_features import (
    GROUPS,
    check_ablate,
    column_names,
    feature_groups,
    group_of,
    kept_columns,
    side_names,
)

SHOP_ITEM = (["category", "brand", "price_bucket", "age_days_bucket"], ["price", "stock", "age_days", "events_total"])
SHOP_ITEM[1].extend(["n_view_7d", "n_purchase_30d", "conversion", "avg_rating", "n_ratings", "first_seen_days"])
SHOP_ITEM[1].extend(["last_seen_days", "trend_1d_vs_30d", "shelf_life"])
SHOP_USER = (["age_bucket", "gender", "region", "top_category", "activity_level"], ["events_total", "n_view_0.5d"])
SHOP_USER[1].extend(["conversion_7d", "spend_30d", "price_affinity", "recency_days", "active_days_30d", "loyalty"])
MOVIELENS_ITEM = (["category", "release_year_bucket"], ["release_year", "n_rating_7d", "avg_rating"])
MOVIELENS_USER = (["gender", "occupation", "age_bucket"], ["age", "events_per_session", "top_category_share"])


def names(item: tuple[list[str], list[str]], user: tuple[list[str], list[str]]) -> list[str]:
    numeric, categorical = column_names(["ease", "recent30"], item[0], item[1], user[0], user[1])
    return numeric + categorical


def test_columns_are_named_in_the_pairs_order() -> None:
    numeric, categorical = column_names(["ease"], ["brand"], ["price"], ["gender"], ["spend_7d"])
    assert numeric == ["ease.score", "ease.gap", "ease.log_rank", "category_affinity", "item.price", "user.spend_7d"]
    assert categorical == ["item_id", "item.brand", "user.gender"]


def test_names_lightgbm_refuses_are_made_safe() -> None:
    numeric, _ = column_names([], [], ['odd "name": [x]'], [], [])
    assert numeric[-1] == "item.odd__name____x_"


def test_a_model_saved_without_names_gets_placeholders_by_position() -> None:
    assert side_names(("a", "b", "c"), 1, 2) == (["a"], ["b", "c"])
    assert side_names((), 1, 2) == (["categorical_0"], ["numeric_0", "numeric_1"])


@pytest.mark.parametrize("tables", [(SHOP_ITEM, SHOP_USER), (MOVIELENS_ITEM, MOVIELENS_USER)], ids=["shop", "ml"])
def test_groups_partition_the_columns(tables: tuple) -> None:
    columns = names(*tables)
    groups = feature_groups(columns, ["ease", "recent30"])
    assert sorted(c for members in groups.values() for c in members) == sorted(columns)
    assert set(groups) <= {"ease", "recent30", *GROUPS}


def test_each_side_column_lands_where_a_data_scientist_looks_for_it() -> None:
    groups = feature_groups(names(SHOP_ITEM, SHOP_USER), ["ease", "recent30"])
    assert groups["ease"] == ["ease.score", "ease.gap", "ease.log_rank"]
    assert groups["category_affinity"] == ["category_affinity"] and groups["item_id"] == ["item_id"]
    assert groups["item_popularity"] == [
        "item.events_total",
        "item.n_view_7d",
        "item.n_purchase_30d",
        "item.conversion",
        "item.trend_1d_vs_30d",
    ]
    assert groups["item_rating"] == ["item.avg_rating", "item.n_ratings"]
    assert groups["item_age"] == [
        "item.age_days",
        "item.first_seen_days",
        "item.last_seen_days",
        "item.age_days_bucket",
    ]
    assert groups["item_attributes"] == ["item.price", "item.stock", "item.category", "item.brand", "item.price_bucket"]
    assert groups["item_other"] == ["item.shelf_life"]
    assert groups["user_demographics"] == ["user.age_bucket", "user.gender", "user.region"]
    assert groups["user_taste"] == ["user.price_affinity", "user.top_category"]
    assert groups["user_activity"] == [
        "user.events_total",
        "user.n_view_0.5d",
        "user.conversion_7d",
        "user.spend_30d",
        "user.recency_days",
        "user.active_days_30d",
        "user.activity_level",
    ]
    assert groups["user_other"] == ["user.loyalty"]


def test_movielens_columns() -> None:
    assert group_of("item.release_year", []) == group_of("item.release_year_bucket", []) == "item_attributes"
    assert group_of("user.age", []) == group_of("user.occupation", []) == "user_demographics"
    assert group_of("item.n_rating_7d", []) == "item_popularity"
    assert group_of("user.top_category_share", []) == "user_taste"


def test_kept_columns_leave_out_the_dropped_groups() -> None:
    columns = names(MOVIELENS_ITEM, MOVIELENS_USER)
    kept = [columns[j] for j in kept_columns(columns, ["ease", "recent30"], ["ease", "user_demographics"])]
    assert not any(c.startswith("ease.") for c in kept)
    assert "user.age" not in kept and "user.occupation" not in kept and "recent30.score" in kept
    assert len(kept) == len(columns) - 3 - 4


def test_ablate_names_generators_or_groups() -> None:
    generators = {"ease": {}, "recent30": {}}
    assert check_ablate(["ease", "item_popularity"], generators) == ["ease", "item_popularity"]
    assert check_ablate(None, generators) == []
    with pytest.raises(ConfigError, match=r"model.ablate: unknown name\(s\) eas; known: ease, recent30, category"):
        check_ablate(["eas"], generators)
    with pytest.raises(ConfigError, match="every candidate generator"):
        check_ablate(["ease", "recent30"], generators)
    with pytest.raises(ConfigError, match="twice"):
        check_ablate(["ease", "ease"], generators)
    with pytest.raises(ConfigError, match="give a list"):
        check_ablate("ease", generators)
