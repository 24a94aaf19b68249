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


# --------------------------------------------------------------------------- clickstream knobs and layouts

# The default shop's bytes, pinned when the clickstream knobs were added: every knob
# is off by default, so `SMALL` (and experiments/synth_small.yaml) keep their data.
SMALL_EVENTS_SHA256 = "eabbff7fcf3d2513397af59d75171585bbb0af45998db841cfed0b3e0fe19cac"
CLICK = dict(n_events=20_000, n_days=20, seed=3, cart_scale=0.3, click_share=0.03, views_per_session=4.0)


def shop_events(cfg: SynthConfig, out: Path) -> pl.DataFrame:
    """The written events of a shop-layout config, with the view's day."""
    generate(cfg, out)
    ev = pl.read_csv(out / "events.csv").drop_nulls(["customer_id", "sku"])
    return ev.with_columns(pl.col("event_time").str.slice(0, 10).alias("day"))


def test_default_config_keeps_the_shops_bytes(shop: Path) -> None:
    assert digest(shop / "events.csv") == SMALL_EVENTS_SHA256


def test_cart_scale_and_click_share_let_views_dominate(shop: Path, tmp_path: Path) -> None:
    def view_share(ev: pl.DataFrame) -> float:
        return float((ev["event"] == "view").mean())

    default = view_share(pl.read_csv(shop / "events.csv"))
    clickstream = view_share(shop_events(SynthConfig(**CLICK), tmp_path))
    assert default < 0.7 and clickstream > 0.85


def test_casual_visitors_come_on_one_day_only(tmp_path: Path) -> None:
    def one_day_share(ev: pl.DataFrame) -> float:
        return float((ev.group_by("customer_id").agg(pl.col("day").n_unique())["day"] == 1).mean())

    regulars = one_day_share(shop_events(SynthConfig(**CLICK), tmp_path / "a"))
    casual = one_day_share(shop_events(SynthConfig(**CLICK, casual_share=0.7), tmp_path / "b"))
    assert regulars < 0.4 and casual > 0.6
    ev = shop_events(SynthConfig(**CLICK, casual_share=0.7), tmp_path / "b")
    sessions = ev.group_by("customer_id").agg(pl.col("session").n_unique())["session"]
    assert float((sessions <= 2).mean()) > 0.6  # most visitors: one or two sessions


def complement_lift(ev: pl.DataFrame, items: pl.DataFrame) -> float:
    """How much likelier than its overall share a session's next view falls in the
    category that most often follows the current one (another category), averaged
    over categories: co-occurrence lift of categories, which complements create."""
    views = (
        ev.filter(pl.col("event") == "view")
        .join(items.select("sku", "category"), on="sku")
        .sort("session", "event_time", maintain_order=True)
        .with_columns(pl.col("category").shift(-1).over("session").alias("next"))
        .filter(pl.col("next").is_not_null() & (pl.col("next") != pl.col("category")))
    )
    share = views.group_by("next").agg((pl.len() / views.height).alias("p"))
    follows = (
        views.group_by("category", "next").len().with_columns(pl.col("len") / pl.col("len").sum().over("category"))
    )
    lift = follows.join(share, on="next").with_columns(pl.col("len") / pl.col("p"))
    return float(lift.group_by("category").agg(pl.col("len").max())["len"].mean())


def test_complements_lead_views_to_a_complement_category(tmp_path: Path) -> None:
    def lift(knobs: dict, out: Path) -> float:
        return complement_lift(shop_events(SynthConfig(**knobs), out), pl.read_csv(out / "items.csv"))

    plain = lift(CLICK, tmp_path / "a")
    complements = lift(dict(CLICK, complement_share=0.5), tmp_path / "b")
    assert complements > 3 * plain


def returning_sessions(ev: pl.DataFrame) -> pl.DataFrame:
    """Per session: whether it opens on an item the user viewed on an earlier day,
    and whether that opening item was carted in the session."""
    first_seen = (
        ev.filter(pl.col("event") == "view").group_by("customer_id", "sku").agg(pl.col("day").min().alias("seen"))
    )
    carted = ev.filter(pl.col("event") == "add_to_cart").select("session", "sku").unique().with_columns(carted=True)
    opening = ev.filter(pl.col("event") == "view").sort("event_time").group_by("session").first()
    return (
        opening.join(first_seen, on=["customer_id", "sku"])
        .join(carted, on=["session", "sku"], how="left")
        .select((pl.col("seen") < pl.col("day")).alias("returns"), pl.col("carted").fill_null(False))
    )


def test_retargeting_brings_users_back_to_items_viewed_before(tmp_path: Path) -> None:
    wide = dict(CLICK, n_items=5_000)  # a catalogue wide enough that users rarely meet an item twice by chance
    plain = returning_sessions(shop_events(SynthConfig(**wide), tmp_path / "a"))
    retarget = returning_sessions(shop_events(SynthConfig(**wide, retarget_share=0.6), tmp_path / "b"))
    assert retarget["returns"].mean() > plain["returns"].mean() + 0.2
    rate = retarget.group_by("returns").agg(pl.col("carted").mean())
    back, new = (rate.filter(pl.col("returns") == flag)["carted"].item() for flag in (True, False))
    assert back > 1.6 * new  # an item looked at before is carted more often when the user comes back to it


@pytest.mark.parametrize("layout", ["shop", "retailrocket"])
def test_clickstream_shops_are_deterministic(tmp_path: Path, layout: str) -> None:
    knobs = dict(CLICK, casual_share=0.5, complement_share=0.3, retarget_share=0.2, layout=layout, n_events=5_000)
    generate(SynthConfig(**knobs), tmp_path / "a")
    generate(SynthConfig(**knobs), tmp_path / "b")
    generate(SynthConfig(**{**knobs, "seed": 4}), tmp_path / "c")
    files = sorted(p.name for p in (tmp_path / "a").glob("*.csv"))
    assert files and all(digest(tmp_path / "a" / f) == digest(tmp_path / "b" / f) for f in files)
    assert digest(tmp_path / "a" / "events.csv") != digest(tmp_path / "c" / "events.csv")
    assert pl.read_csv(tmp_path / "a" / "events.csv").height == 5_000


def test_retailrocket_layout_is_ingested_by_the_retailrocket_source(tmp_path: Path) -> None:
    from recsys_cli.config import compose
    from recsys_cli.tasks.ingest import run

    raw = tmp_path / "raw" / "retailrocket"
    cfg = SynthConfig(**dict(CLICK, n_events=3_000, casual_share=0.5, complement_share=0.3), layout="retailrocket")
    counts = generate(cfg, raw)
    assert set(counts) == {"events", "item_properties_part1", "item_properties_part2", "category_tree"}
    written = pl.read_csv(raw / "events.csv")
    assert written.columns == ["timestamp", "visitorid", "event", "itemid", "transactionid"]
    assert written.height == 3_000
    clean = written.drop_nulls(["visitorid", "itemid"]).filter(pl.col("event") != "unknown_action").unique()
    expected = dict(clean["event"].value_counts().iter_rows())

    m = run(compose("ingest", ["data=retailrocket", f"paths.data_dir={tmp_path}"])).manifest
    names = {"view": "view", "add_to_cart": "addtocart", "purchase": "transaction"}
    assert {names[k]: v for k, v in m["events_by_type"].items()} == expected
    lake = tmp_path / "lake" / "retailrocket"
    items = pl.read_parquet(lake / "items.parquet")
    assert items.height == cfg.sizes()[1]
    assert items["category"].null_count() == 0 and items["parent_category"].null_count() == 0
    assert set(items["available"].unique()) <= {0, 1}
    bought = pl.read_parquet(lake / "events", hive_partitioning=True).filter(pl.col("event_type") == "purchase")
    assert bought["transaction_id"].null_count() == 0


def test_a_source_refuses_a_generator_of_the_other_layout(tmp_path: Path) -> None:
    from recsys_cli.config import build, compose
    from recsys_cli.errors import ConfigError

    cfg = compose("ingest", ["data=retailrocket_synth", "data.generator.layout=shop"])
    with pytest.raises(ConfigError, match="reads the 'retailrocket' layout"):
        build(cfg.data)


def test_rewriting_a_folder_in_the_other_layout_leaves_no_stale_files(tmp_path: Path) -> None:
    tiny = dict(n_events=300, n_days=3, seed=1)
    generate(SynthConfig(**tiny), tmp_path / "shop")
    generate(SynthConfig(**tiny, layout="retailrocket"), tmp_path / "shop")
    assert not (tmp_path / "shop" / "users.csv").exists() and not (tmp_path / "shop" / "items.csv").exists()
    assert (tmp_path / "shop" / "category_tree.csv").exists()
