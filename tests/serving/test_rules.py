"""Business re-ranking as a merchandising team specifies it, on a ten-item shop:
request filters drop, sold-out items go, unknown stock stays, low stock is
demoted, boosts push, at most N per category, new launches get reserved places
at the end of the answer, ties are broken by item index, and `explain` says what
each rule did to which item."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import polars as pl
import pytest

from recsys_cli.registry.package_tables import ITEM_COLUMNS
from recsys_cli.schemas.serve_rules import Rules
from recsys_cli.serving.catalogue import Catalogue
from recsys_cli.serving.rules import ORDER, Filters, Reranked, admissible, rerank, scale

NOW = datetime(2026, 6, 1, tzinfo=UTC)
OLD = NOW - timedelta(days=400)
# id, category, brand, price, stock, launched
SHOP = [
    ("a1", "shoes", "nike", 50.0, 10, OLD),
    ("a2", "shoes", "nike", 60.0, 3, OLD),  # low stock
    ("a3", "shoes", "puma", 70.0, 0, OLD),  # sold out
    ("a4", "shoes", "puma", 80.0, None, OLD),  # stock unknown
    ("b1", "hats", "nike", 20.0, 10, NOW - timedelta(days=5)),  # new
    ("b2", "hats", "acme", 25.0, 10, OLD),
    ("b3", "hats", "acme", 30.0, 10, NOW - timedelta(days=10)),  # new
    ("c1", "bags", "acme", 100.0, 10, None),  # launch unknown
    ("c2", None, None, None, 10, OLD),  # nothing known
    ("c3", "bags", "acme", 90.0, 10, NOW + timedelta(days=1)),  # not launched yet
]
IDS = [row[0] for row in SHOP]
NONE: dict[str, Any] = {
    "in_stock_only": False,
    "boosts": [],
    "low_stock": None,
    "max_per_category": None,
    "new_products": None,
}


@pytest.fixture
def cat() -> Catalogue:
    columns = list(zip(*SHOP, strict=True))
    frame = {
        "item_id": columns[0],
        "index": range(1, len(SHOP) + 1),
        "category": columns[1],
        "brand": columns[2],
        "price": columns[3],
        "stock": columns[4],
        "launched_at": columns[5],
        "new_product": [None] * len(SHOP),
    }
    return Catalogue.from_items(pl.DataFrame(frame, schema=ITEM_COLUMNS))


def rules(**changes: Any) -> Rules:
    return Rules.model_validate({**NONE, **changes})


def run(
    cat: Catalogue, ids: list[str], scores: list[float], k: int = 10, filters: Filters | None = None, **rule: Any
) -> Reranked:
    return rerank(cat.item_index(ids), np.array(scores), k, cat, rules(**rule), filters or Filters(), NOW.timestamp())


def answer(result: Reranked) -> list[str]:
    return [IDS[i - 1] for i in result.items.tolist()]


def descending(n: int) -> list[float]:
    return [float(n - i) for i in range(n)]


def test_no_rule_keeps_the_model_order_cut_at_k(cat: Catalogue) -> None:
    out = run(cat, IDS, descending(10), k=4)
    assert answer(out) == ["a1", "a2", "a3", "a4"]
    assert out.scores.tolist() == [10.0, 9.0, 8.0, 7.0]


def test_ties_are_broken_by_item_index_and_duplicates_keep_their_best_score(cat: Catalogue) -> None:
    out = run(cat, ["b2", "a2", "b1", "a2", "c9"], [1.0, 1.0, 1.0, 5.0, 9.0])
    assert answer(out) == ["a2", "b1", "b2"]  # c9 is unknown to the model: dropped
    assert out.scores.tolist() == [5.0, 1.0, 1.0]


def test_in_stock_only_drops_sold_out_items_and_keeps_unknown_stock(cat: Catalogue) -> None:
    out = run(cat, IDS, descending(10), k=4, in_stock_only=True)
    assert answer(out) == ["a1", "a2", "a4", "b1"]
    assert out.explain["in_stock_only"] == {"on": True, "decided_by": "rules", "dropped": ["a3"]}


def test_the_request_flag_overrides_the_stock_rule_both_ways(cat: Catalogue) -> None:
    kept = run(cat, IDS, descending(10), k=4, in_stock_only=True, filters=Filters(in_stock_only=False))
    assert "a3" in answer(kept) and kept.explain["in_stock_only"]["decided_by"] == "request"
    dropped = run(cat, IDS, descending(10), k=4, filters=Filters(in_stock_only=True))
    assert "a3" not in answer(dropped)


def test_low_stock_is_demoted_by_its_factor_and_unknown_stock_is_not(cat: Catalogue) -> None:
    out = run(cat, ["a1", "a2", "a4"], [10.0, 9.0, 8.0], low_stock={"below": 5, "factor": 0.5})
    assert answer(out) == ["a1", "a4", "a2"]
    assert out.scores.tolist() == [10.0, 8.0, 4.5]
    assert out.explain["low_stock"]["demoted"] == [{"item": "a2", "old": 9.0, "new": 4.5, "stock": 3}]


def test_model_scores_are_the_candidates_own_whatever_the_rules_did(cat: Catalogue) -> None:
    boosts = [{"column": "category", "equals": "hats", "factor": 3.0}]
    out = run(cat, ["a1", "a2", "b2"], [0.9, 0.8, 0.4], low_stock={"below": 5, "factor": 0.5}, boosts=boosts)
    assert answer(out) == ["b2", "a1", "a2"]
    assert out.scores.tolist() == pytest.approx([1.2, 0.9, 0.4])
    assert out.model_scores.tolist() == [0.4, 0.9, 0.8]


def test_a_factor_moves_negative_scores_the_same_way_as_positive_ones() -> None:
    assert scale(np.array([4.0, -4.0, 0.0]), 0.5).tolist() == [2.0, -8.0, 0.0]
    assert scale(np.array([4.0, -4.0]), 2.0).tolist() == [8.0, -2.0]


def test_boosts_multiply_matching_brand_or_category_and_compound(cat: Catalogue) -> None:
    boosts = [
        {"column": "brand", "equals": "acme", "factor": 2.0},
        {"column": "category", "equals": "hats", "factor": 1.5},
        {"column": "brand", "equals": "nobody", "factor": 9.0},  # no item: no effect
    ]
    out = run(cat, ["a1", "b2", "c1", "b1"], [10.0, 4.0, 3.0, 2.0], boosts=boosts)
    assert answer(out) == ["b2", "a1", "c1", "b1"]
    assert out.scores.tolist() == [12.0, 10.0, 6.0, 3.0]
    done = out.explain["boosts"]
    assert [b["boosted"] for b in done] == [
        [{"item": "b2", "old": 4.0, "new": 8.0}, {"item": "c1", "old": 3.0, "new": 6.0}],
        [{"item": "b2", "old": 8.0, "new": 12.0}, {"item": "b1", "old": 2.0, "new": 3.0}],
        [],
    ]
    assert done[0]["column"] == "brand" and done[0]["equals"] == "acme" and done[0]["factor"] == 2.0


def test_category_cap_lets_the_next_best_of_other_categories_move_up(cat: Catalogue) -> None:
    out = run(cat, IDS, descending(10), k=5, max_per_category=2)
    assert answer(out) == ["a1", "a2", "b1", "b2", "c1"]  # a3, a4 (shoes) and b3 (hats) cut
    cap = out.explain["max_per_category"]
    assert cap["cut"] == [{"item": "a3", "category": "shoes"}, {"item": "a4", "category": "shoes"}]
    assert cap["cut_total"] == 3


def test_items_of_unknown_category_are_not_capped(cat: Catalogue) -> None:
    out = run(cat, ["c2", "a1", "a2"], [3.0, 2.0, 1.0], max_per_category=1)
    assert answer(out) == ["c2", "a1"]


def test_new_products_take_the_last_places_of_the_answer(cat: Catalogue) -> None:
    out = run(cat, IDS, descending(10), k=4, new_products={"days": 30, "slots": 2})
    assert answer(out) == ["a1", "a2", "b1", "b3"]  # a3, a4 displaced
    assert out.scores.tolist() == [10.0, 9.0, 6.0, 4.0]  # still descending
    rule = out.explain["new_products"]
    assert rule["on_merit"] == [] and rule["displaced"] == ["a3", "a4"]
    assert rule["promoted"] == [{"item": "b1", "score": 6.0}, {"item": "b3", "score": 4.0}]


def test_new_products_ranked_on_merit_count_towards_the_slots(cat: Catalogue) -> None:
    out = run(cat, ["b1", "a1", "a2", "a4", "b3"], descending(5), k=3, new_products={"days": 30, "slots": 2})
    assert answer(out) == ["b1", "a1", "b3"]
    assert out.explain["new_products"]["on_merit"] == ["b1"]
    assert out.explain["new_products"]["displaced"] == ["a2"]


def test_new_means_launched_within_the_window_up_to_now(cat: Catalogue) -> None:
    # b3 launched 10 days ago is outside a 7-day window; c3 launches tomorrow; c1's launch is unknown
    out = run(cat, ["a1", "a2", "c1", "c3", "b3", "b1"], descending(6), k=2, new_products={"days": 7, "slots": 3})
    assert answer(out) == ["a1", "b1"]


def test_new_product_slots_stay_empty_without_new_candidates(cat: Catalogue) -> None:
    out = run(cat, ["a1", "a2", "a4"], descending(3), k=2, new_products={"days": 30, "slots": 2})
    assert answer(out) == ["a1", "a2"] and out.explain["new_products"]["promoted"] == []


def test_promoted_new_products_respect_the_category_cap(cat: Catalogue) -> None:
    # b1 and b3 are both new hats, but the cap allows one hat after b2
    ids = ["b2", "a1", "a2", "c1", "b1", "b3"]
    out = run(cat, ids, descending(6), k=4, max_per_category=2, new_products={"days": 30, "slots": 2})
    assert answer(out) == ["b2", "a1", "a2", "b1"]


def test_request_filters_drop_by_category_and_price_range(cat: Catalogue) -> None:
    only = Filters(categories=["hats", "bags", "socks"], price_min=22.0, price_max=95.0)
    out = run(cat, IDS, descending(10), filters=only)
    assert answer(out) == ["b2", "b3", "c3"]
    dropped = out.explain["filters"]["dropped"]
    assert dropped["category"] == ["a1", "a2", "a3", "a4", "c2"]
    assert dropped["price_min"] == ["b1"] and dropped["price_max"] == ["c1"]
    assert out.explain["filters"]["given"] == {
        "categories": ["hats", "bags", "socks"],
        "price_min": 22.0,
        "price_max": 95.0,
    }


def test_an_unknown_price_never_passes_a_price_filter(cat: Catalogue) -> None:
    out = run(cat, ["c2", "a1"], [2.0, 1.0], filters=Filters(price_max=1000.0))
    assert answer(out) == ["a1"]


def test_fewer_survivors_than_k_give_a_shorter_answer(cat: Catalogue) -> None:
    out = run(cat, ["a3", "a1"], [2.0, 1.0], k=5, in_stock_only=True)
    assert answer(out) == ["a1"]
    empty = run(cat, [], [], k=5, in_stock_only=True, max_per_category=1, new_products={"days": 1, "slots": 1})
    assert empty.items.tolist() == [] and empty.explain["returned"] == 0


def test_explain_has_one_entry_per_rule_in_order_and_is_json(cat: Catalogue) -> None:
    out = run(cat, IDS, descending(10), k=3)
    assert out.explain["order"] == ORDER and all(step in out.explain for step in ORDER)
    assert out.explain["candidates"] == 10 and out.explain["returned"] == 3
    assert out.explain["low_stock"] == {"on": False} and out.explain["new_products"] == {"on": False}
    json.dumps(out.explain)


def test_without_explain_nothing_is_recorded_and_the_answer_is_the_same(cat: Catalogue) -> None:
    shop = Rules.model_validate_json(json.dumps({**NONE, "in_stock_only": True, "max_per_category": 2}))
    index, scores = cat.item_index(IDS), np.array(descending(10))
    quiet = rerank(index, scores, 5, cat, shop, Filters(), NOW.timestamp(), explain=False)
    loud = rerank(index, scores, 5, cat, shop, Filters(), NOW.timestamp())
    assert quiet.explain is None and quiet.items.tolist() == loud.items.tolist()


def test_the_shipped_default_rules_on_the_shop(cat: Catalogue) -> None:
    from omegaconf import OmegaConf

    from recsys_cli.config import DEFAULT_CONF_DIR

    default = Rules.model_validate(
        OmegaConf.to_container(OmegaConf.load(DEFAULT_CONF_DIR / "serve/rules/default.yaml"))
    )
    out = rerank(cat.item_index(IDS), np.array(descending(10)), 5, cat, default, Filters(), NOW.timestamp())
    # a3 sold out; a2 (stock 3) demoted to 4.5; at most 3 shoes; b1 is new and ranks on merit, b3 promoted
    assert answer(out) == ["a1", "a4", "b1", "b2", "b3"]


def test_admissible_applies_the_filters_and_stock_rule_to_any_item_list(cat: Catalogue) -> None:
    mask = admissible(cat.item_index(["a3", "b1", "c1", "zz"]), cat, rules(in_stock_only=True), Filters(price_max=50.0))
    assert mask.tolist() == [False, True, False, False]
    assert admissible(np.array([99, -1]), cat, rules(), Filters()).tolist() == [False, False]
