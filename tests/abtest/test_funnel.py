"""The funnel is fitted from logs: item rates shrunk to the shop's, and a personal
affinity weight found where the logs carry taste and not where they do not."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import polars as pl
import pytest

from recsys_cli.abtest import AbTestError
from recsys_cli.abtest.funnel import STAGES, FunnelSpec, fit_funnel, fit_offset_logistic
from recsys_cli.abtest.logs import PURCHASE_QTY, build_catalog
from recsys_cli.data.schema import EVENT_TYPES, Col

N_USERS, N_ITEMS, N_CATEGORIES = 400, 200, 10


def tasteful_history(n: int = 40_000, seed: int = 0) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Exposures of users who each favour one category: 60% of what they see is in it,
    they cart it three times as often, and clicks are a coin flip of 20% for all."""
    rng = np.random.default_rng(seed)
    item_category = np.arange(N_ITEMS) % N_CATEGORIES
    favourite = rng.integers(0, N_CATEGORIES, N_USERS)
    user = rng.integers(0, N_USERS, n)
    in_favourite = rng.random(n) < 0.6
    category = np.where(in_favourite, favourite[user], rng.integers(0, N_CATEGORIES, n))
    item = category + N_CATEGORIES * rng.integers(0, N_ITEMS // N_CATEGORIES, n)
    liked = item_category[item] == favourite[user]
    cart = rng.random(n) < np.where(liked, 0.3, 0.1)
    purchase = cart & (rng.random(n) < 0.5)
    flags = {kind: np.zeros(n, bool) for kind in EVENT_TYPES}
    flags |= {"view": np.ones(n, bool), "click": rng.random(n) < 0.2, "add_to_cart": cart, "purchase": purchase}
    start = datetime(2026, 1, 1, tzinfo=UTC)
    history = pl.DataFrame(
        {
            Col.USER: [f"u{u}" for u in user],
            Col.SESSION: [f"s{i}" for i in range(n)],
            Col.ITEM: [f"i{i:03d}" for i in item],
            Col.TS: pl.Series(np.sort(rng.integers(0, 60 * 86_400, n)) * 1_000_000).cast(pl.Duration("us")) + start,
            **flags,
            PURCHASE_QTY: np.where(purchase, 1 + (rng.random(n) < 0.5), 0),
        }
    )
    items = pl.DataFrame(
        {
            Col.ITEM: [f"i{i:03d}" for i in range(N_ITEMS)],
            Col.CATEGORY: [f"c{c}" for c in item_category],
            Col.PRICE: np.full(N_ITEMS, 5.0),
        }
    )
    return history, items


def test_affinity_weight_is_found_for_carts_and_not_for_random_clicks() -> None:
    history, items = tasteful_history()
    catalog = build_catalog(items, history[Col.ITEM])
    funnel = fit_funnel(history, catalog, FunnelSpec())
    click, cart, _ = funnel.weight
    assert abs(click) < 0.1 and cart > 0.3
    stages = funnel.diagnostics["stages"]
    assert set(stages) == set(STAGES)
    assert stages["cart"]["holdout_log_loss_fitted"] < stages["cart"]["holdout_log_loss_items"]
    assert funnel.mean_quantity == pytest.approx(1.5, abs=0.05)

    # A user is likelier to cart an item of the category they favour than another.
    seen = history.join(items, on=Col.ITEM).group_by(Col.USER, Col.CATEGORY).len()
    top = seen.sort("len", Col.CATEGORY, descending=[True, False]).group_by(Col.USER).first().sort(Col.USER)
    user_id, favourite = top[Col.USER][0], int(top[Col.CATEGORY][0].removeprefix("c"))
    other = (favourite + 1) % N_CATEGORIES
    p = funnel.probabilities(
        funnel.user_rows(pl.Series([user_id])),
        catalog.index(pl.Series([f"i{favourite:03d}", f"i{other:03d}"]))[None, :],
    )
    assert p.shape == (1, 2, 3)
    assert p[0, 0, 1] > 1.5 * p[0, 1, 1]


def test_item_rates_are_shrunk_towards_the_shop_rate() -> None:
    history, items = tasteful_history(n=5_000, seed=1)
    catalog = build_catalog(items, history[Col.ITEM])
    funnel = fit_funnel(history, catalog, FunnelSpec(prior_strength=1e9))
    # With an overwhelming prior every item has the shop's click rate.
    rates = 1 / (1 + np.exp(-funnel.item_logit[:, 0]))
    assert np.ptp(rates) < 1e-6 and rates[0] == pytest.approx(history["click"].mean(), abs=1e-6)
    unknown_user = funnel.user_rows(pl.Series(["never-seen"]))
    assert unknown_user.tolist() == [0]
    assert funnel.affinity.score(unknown_user, np.array([[1, 2]])).tolist() == [[0.0, 0.0]]


def test_offset_logistic_recovers_its_coefficients() -> None:
    rng = np.random.default_rng(3)
    z, offset = rng.normal(size=50_000), rng.normal(-1.0, 0.5, 50_000)
    y = rng.random(50_000) < 1 / (1 + np.exp(-(offset + 0.3 + 0.7 * z)))
    b, w = fit_offset_logistic(offset, z, y.astype(float), ridge=0.0)
    assert b == pytest.approx(0.3, abs=0.05) and w == pytest.approx(0.7, abs=0.05)
    assert fit_offset_logistic(offset, np.zeros_like(z), y.astype(float))[1] == 0.0  # no spread: no slope


def test_a_stage_without_events_is_a_clear_error() -> None:
    history, items = tasteful_history(n=2_000)
    catalog = build_catalog(items, history[Col.ITEM])
    with pytest.raises(AbTestError, match=r"no click events \['rating'\]"):
        fit_funnel(history, catalog, FunnelSpec(click_events=["rating"]))
    with pytest.raises(AbTestError, match="unknown event types"):
        FunnelSpec(cart_events=["basket"])
