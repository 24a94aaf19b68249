"""The synthetic shop: exact size, byte-for-byte determinism, and structure that a
personalised model can learn while a popularity model cannot."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import polars as pl
import pytest

from recsys_cli.data.synth import SynthConfig, generate
from recsys_cli.errors import OutputError

SMALL = SynthConfig(n_events=20_000, n_days=20, seed=3)


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("shop")
    generate(SMALL, out)
    return out


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_writes_exactly_the_requested_events(shop: Path) -> None:
    assert pl.read_csv(shop / "events.csv").height == SMALL.n_events
    assert not list(shop.glob(".*tmp"))


def test_same_seed_same_bytes_other_seed_other_bytes(shop: Path, tmp_path: Path) -> None:
    generate(SMALL, tmp_path / "again")
    generate(SynthConfig(n_events=20_000, n_days=20, seed=4), tmp_path / "other")
    for name in ("events.csv", "items.csv", "users.csv"):
        assert digest(shop / name) == digest(tmp_path / "again" / name)
    assert digest(shop / "events.csv") != digest(tmp_path / "other" / "events.csv")


def test_funnel_order_within_sessions(shop: Path) -> None:
    ev = pl.read_csv(shop / "events.csv")
    broken = ev.filter(
        pl.col("customer_id").is_null() | pl.col("sku").is_null() | (pl.col("event") == "unknown_action")
    )
    ev = ev.join(broken.select("session").unique(), on="session", how="anti")
    first = ev.group_by("session", "sku", "event").agg(pl.col("event_time").min())
    wide = first.pivot(on="event", index=["session", "sku"], values="event_time")
    bought = wide.filter(pl.col("purchase").is_not_null())
    assert bought.height > 0
    assert (bought["add_to_cart"] <= bought["purchase"]).all()
    assert (wide.filter(pl.col("add_to_cart").is_not_null())["view"].is_not_null()).all()


def test_funnel_has_abandonment_removals_and_ratings(shop: Path) -> None:
    counts = dict(pl.read_csv(shop / "events.csv")["event"].value_counts().iter_rows())
    assert counts["view"] > counts["add_to_cart"] > counts["purchase"] > counts["rating"] > 0
    assert counts["remove_from_cart"] > 0 and counts["click"] > 0


def test_new_products_keep_arriving(shop: Path) -> None:
    items = pl.read_csv(shop / "items.csv", try_parse_dates=True)
    launched = items.filter(pl.col("launched").dt.date() >= pl.date(2026, 1, 1))
    assert launched.height / items.height > 0.15


def test_tastes_are_personal_not_just_popular(shop: Path) -> None:
    """Users concentrate on their own categories far beyond what global popularity
    predicts: the share of a user's views in their top category is much higher than
    the global top category's share."""
    ev = pl.read_csv(shop / "events.csv").filter(pl.col("event") == "view")
    items = pl.read_csv(shop / "items.csv").select("sku", "category")
    ev = ev.join(items, on="sku")
    global_top = ev["category"].value_counts(normalize=True)["proportion"].max()
    per_user = (
        ev.group_by("customer_id", "category")
        .len()
        .with_columns(
            (pl.col("len") / pl.col("len").sum().over("customer_id")).alias("share"),
            pl.col("len").sum().over("customer_id").alias("n"),
        )
        .filter(pl.col("n") >= 20)
        .group_by("customer_id")
        .agg(pl.col("share").max())
    )
    assert per_user["share"].median() > 2 * global_top


def test_weekends_are_busier(shop: Path) -> None:
    ev = pl.read_csv(shop / "events.csv", try_parse_dates=True)
    per_day = (
        ev.group_by(pl.col("event_time").dt.date().alias("d")).len().with_columns(pl.col("d").dt.weekday().alias("wd"))
    )
    weekend = per_day.filter(pl.col("wd") >= 6)["len"].mean()
    weekday = per_day.filter(pl.col("wd") <= 4)["len"].mean()
    assert weekend > weekday


def test_generates_only_into_a_new_empty_or_earlier_synthetic_folder(tmp_path: Path) -> None:
    tiny = SynthConfig(n_events=200, n_days=3, seed=1)
    for _ in range(2):  # an earlier shop is replaced
        generate(tiny, tmp_path / "shop")
    assert json.loads((tmp_path / "shop" / "manifest.json").read_text())["kind"] == "synth"
    export = tmp_path / "export"
    export.mkdir()
    (export / "events.csv").write_text("user_id,item_id\nu1,i1\n")  # someone's own log
    with pytest.raises(OutputError, match="not a synth written by recsys: no manifest.json"):
        generate(tiny, export)
    assert [p.name for p in export.iterdir()] == ["events.csv"]
