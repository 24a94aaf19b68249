"""Shocks after a date in the synthetic shop (data/synth_shocks.py): each is
visible from its date on and absent before it, the same seed gives the same
bytes, a bad shock is refused in one line naming its field, and a shop without
shocks keeps the bytes it had before shocks existed."""

from __future__ import annotations

import hashlib
import json
import typing
from dataclasses import fields
from pathlib import Path

import polars as pl
import pytest
from scipy.spatial.distance import jensenshannon

from recsys_cli.data import synth_shocks
from recsys_cli.data.synth import SynthConfig, generate
from recsys_cli.data.synth_shocks import CategorySurge, NewProducts, PriceShift, TasteChange
from recsys_cli.errors import ConfigError

BASE = dict(n_events=30_000, n_days=30, seed=3)
DAY = 15
DATE = "2026-01-16"  # start + DAY days
SURGE = CategorySurge(start_day=DAY, category=8, factor=3.0)
PRICE = PriceShift(start_day=DAY, category=5, factor=1.25)
WAVE = NewProducts(start_day=DAY, count=40, share=0.2)
TASTE = TasteChange(start_day=DAY, segment={"region": "north"})


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def shop(out: Path, *shocks: synth_shocks.Shock, **knobs: object) -> Path:
    generate(SynthConfig(**{**BASE, **knobs}, shocks=shocks), out)
    return out


def events(folder: Path) -> pl.DataFrame:
    """The clean written events with their item's category and list price, their
    user's region, and whether they fall on or after the shock's date."""
    items = pl.read_csv(folder / "items.csv").select("sku", "category", "list_price")
    users = pl.read_csv(folder / "users.csv").select("customer_id", "region")
    return (
        pl.read_csv(folder / "events.csv")
        .drop_nulls(["customer_id", "sku"])
        .filter(pl.col("event") != "unknown_action")
        .join(items, on="sku")
        .join(users, on="customer_id")
        .with_columns((pl.col("event_time") >= DATE).alias("after"))
    )


def views(ev: pl.DataFrame, after: bool, where: pl.Expr | bool = True) -> pl.DataFrame:
    return ev.filter((pl.col("event") == "view") & (pl.col("after") == after) & where)


def category_mix(ev: pl.DataFrame) -> dict[str, int]:
    return dict(ev["category"].value_counts().iter_rows())


def js_distance(a: dict[str, int], b: dict[str, int]) -> float:
    names = sorted(set(a) | set(b))
    return float(jensenshannon([a.get(n, 0) for n in names], [b.get(n, 0) for n in names], base=2))


@pytest.fixture(scope="module")
def plain(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return shop(tmp_path_factory.mktemp("plain"))


@pytest.fixture(scope="module")
def plain_events(plain: Path) -> pl.DataFrame:
    return events(plain)


# --------------------------------------------------------------------------- no shocks: the bytes stay

# Every file of three small shops, hashed with the generator as committed before
# shocks existed (the default funnel, the clickstream knobs, the RetailRocket
# layout). Benchmarks and experiments depend on these bytes.
PINNED = {
    "small": (
        dict(n_events=20_000, n_days=20, seed=3),
        {
            "events.csv": "eabbff7fcf3d2513397af59d75171585bbb0af45998db841cfed0b3e0fe19cac",
            "items.csv": "167a2b06ba259755ed604d098c87d69eada7eba10988376c76203397ad76704f",
            "users.csv": "840ebdc29d1176ac4c0f7e825ee861cf6b2c6d4a79ef88330b4d6f9dfb01b097",
        },
    ),
    "clickstream": (
        dict(
            n_events=20_000,
            n_days=30,
            seed=5,
            views_per_session=4.0,
            click_share=0.03,
            cart_scale=0.5,
            casual_share=0.7,
            complement_share=0.3,
            retarget_share=0.2,
            events_per_user=9,
            events_per_item=35,
            popularity_shape=2.0,
        ),
        {
            "events.csv": "3445ee0f7eb200d29e042249205819a12417eb18643fe15ceb6b73c74ce7a227",
            "items.csv": "0632cc1232527b2116bcab14906885e5c084b231c732f721a58e0fcfff8a41ce",
            "users.csv": "d6bd84de9e8dfafe7ac868f4ddfa81c277ea3ee12e7751228ee587318f5a12b3",
        },
    ),
    "retailrocket": (
        dict(
            n_events=10_000,
            n_days=20,
            seed=7,
            layout="retailrocket",
            views_per_session=4.0,
            cart_scale=0.6,
            casual_share=0.7,
            complement_share=0.3,
            retarget_share=0.2,
        ),
        {
            "category_tree.csv": "e7acd56db68bbce6e943a62e256c72067323ea50271fc80028d2ae9d7740baa8",
            "events.csv": "cc52f24f53d84c94027a1f99546498026464069df6688a2d9247e37e7a9fe88f",
            "item_properties_part1.csv": "c3aeee392ef8a54ee3ce2f49c5df62c890d4647156bebf7c59a8f9cae6840f8c",
            "item_properties_part2.csv": "1fee7a298ab114f4815106637f11aeb44b3b897becedebe888e7916b51df7d66",
        },
    ),
}


@pytest.mark.parametrize("name", list(PINNED))
def test_a_shop_without_shocks_keeps_its_bytes(tmp_path: Path, name: str) -> None:
    knobs, pinned = PINNED[name]
    generate(SynthConfig(**knobs), tmp_path)
    assert {p.name: digest(p) for p in sorted(tmp_path.glob("*.csv"))} == pinned
    assert "shocks" not in json.loads((tmp_path / "manifest.json").read_text())["generator"]


def test_events_before_the_date_are_the_unshocked_shops_byte_for_byte(plain: Path, tmp_path: Path) -> None:
    shocked = shop(tmp_path, SURGE, PRICE, WAVE, TASTE)

    def before(folder: Path) -> list[str]:
        return [line for line in (folder / "events.csv").read_text().splitlines()[1:] if line < DATE]

    assert len(before(plain)) > 10_000 and before(shocked) == before(plain)
    plain_items = (plain / "items.csv").read_text().splitlines()
    assert (shocked / "items.csv").read_text().splitlines()[: len(plain_items)] == plain_items
    assert digest(shocked / "users.csv") == digest(plain / "users.csv")


def test_shocked_shops_are_deterministic_for_a_seed(tmp_path: Path) -> None:
    for name, seed in (("a", 3), ("b", 3), ("c", 4)):
        shop(tmp_path / name, SURGE, PRICE, WAVE, TASTE, n_events=5_000, seed=seed)
    for name in ("events.csv", "items.csv", "users.csv", "manifest.json"):
        assert digest(tmp_path / "a" / name) == digest(tmp_path / "b" / name)
    assert digest(tmp_path / "a" / "events.csv") != digest(tmp_path / "c" / "events.csv")
    assert pl.read_csv(tmp_path / "a" / "events.csv").height == 5_000


def test_the_manifest_records_the_shocks_kind_first(tmp_path: Path) -> None:
    shop(tmp_path, SURGE, TASTE, n_events=2_000)
    recorded = json.loads((tmp_path / "manifest.json").read_text())["generator"]["shocks"]
    assert recorded == [
        {"kind": "category_surge", "start_day": DAY, "category": 8, "factor": 3.0},
        {"kind": "taste_change", "start_day": DAY, "segment": {"region": "north"}, "categories": None},
    ]
    assert SynthConfig(**{**BASE, "shocks": recorded}).shocks == (SURGE, TASTE)  # read back as written


# --------------------------------------------------------------------------- each shock, after its date only


def test_a_category_surge_multiplies_its_share_of_views_from_the_date_on(
    plain_events: pl.DataFrame, tmp_path: Path
) -> None:
    ev = events(shop(tmp_path, SURGE))

    def share(frame: pl.DataFrame, after: bool) -> float:
        return float((views(frame, after)["category"] == "cat_08").mean())

    assert share(ev, after=False) == share(plain_events, after=False)
    assert 2.5 < share(ev, after=True) / share(plain_events, after=True) < 3.5  # factor 3 on the same days


def test_a_price_shift_reprices_the_category_in_events_from_the_date_on(
    plain: Path, plain_events: pl.DataFrame, tmp_path: Path
) -> None:
    folder = shop(tmp_path, PRICE)
    priced = events(folder).filter(pl.col("unit_price") > 0)
    ratio = priced.with_columns(
        (pl.col("unit_price") / pl.col("list_price")).round(2).alias("ratio"),
        (pl.col("category") == "cat_05").alias("shifted"),
    )
    seen = {(a, s): sorted(set(r)) for a, s, r in ratio.group_by("after", "shifted").agg("ratio").iter_rows()}
    assert seen[(True, True)] == [1.06, 1.25]  # 1.25 times the list price, or that less the 15% discount
    assert seen[(False, True)] == seen[(True, False)] == seen[(False, False)] == [0.85, 1.0]
    assert digest(folder / "items.csv") == digest(plain / "items.csv")  # the catalogue as at the start


def test_a_price_shift_adds_a_price_snapshot_at_its_date_in_the_retailrocket_layout(tmp_path: Path) -> None:
    knobs, _ = PINNED["retailrocket"]
    shift = PriceShift(start_day=10, category=3, factor=1.5)
    generate(SynthConfig(**{**knobs, "shocks": (shift,)}), tmp_path)
    props = pl.concat([pl.read_csv(tmp_path / f"item_properties_part{i}.csv") for i in (1, 2)])
    category = props.filter(pl.col("property") == "categoryid").select("itemid", pl.col("value").alias("cat"))
    date_ms = 1_767_225_600_000 + 10 * 86_400_000
    prices = (
        props.filter(pl.col("property") == "790")
        .join(category, on="itemid")
        .with_columns(
            pl.col("value").str.strip_chars("n").cast(pl.Float64), (pl.col("timestamp") >= date_ms).alias("after")
        )
        .sort("timestamp")
        .group_by("itemid", "after", "cat")
        .agg(pl.col("value").first())
        .pivot(on="after", index=["itemid", "cat"], values="value")
        .drop_nulls()
    )
    ratio = (prices["true"] / prices["false"]).round(1)
    shifted = prices["cat"] == "3"
    assert shifted.sum() > 0 and (ratio.filter(shifted) == 1.5).all()


def test_new_products_launch_at_the_date_and_draw_their_share_of_views_after_it(plain: Path, tmp_path: Path) -> None:
    folder = shop(tmp_path, WAVE)
    items = pl.read_csv(folder / "items.csv")
    new = items.slice(pl.read_csv(plain / "items.csv").height)
    assert new.height == WAVE.count and new["launched"].unique().to_list() == [f"{DATE}T00:00:00.000Z"]
    assert new["sku"].n_unique() == WAVE.count and not new["sku"].is_in(items.head(-WAVE.count)["sku"].implode()).any()
    ev = events(folder)
    is_new = pl.col("sku").is_in(new["sku"].implode())
    assert ev.filter(~pl.col("after") & is_new).height == 0
    assert abs(views(ev, after=True).select(is_new.mean()).item() - WAVE.share) < 0.02
    assert ev.filter(pl.col("after") & is_new & (pl.col("event") == "purchase")).height > 0


def test_a_taste_change_moves_the_segments_category_mix_and_no_one_elses(
    plain_events: pl.DataFrame, tmp_path: Path
) -> None:
    ev = events(shop(tmp_path, TASTE))

    def distance(region: str, after: bool) -> float:
        where = pl.col("region") == region
        return js_distance(category_mix(views(ev, after, where)), category_mix(views(plain_events, after, where)))

    assert distance("north", after=False) == 0.0
    assert distance("north", after=True) > 0.3
    assert all(distance(region, after=True) < 0.05 for region in ("south", "east", "west", "central"))


def test_a_taste_change_onto_named_categories(tmp_path: Path) -> None:
    change = TasteChange(start_day=DAY, segment={"region": "south", "age_bucket": "25-34"}, categories=(0, 15))
    ev = events(shop(tmp_path, change))
    users = pl.read_csv(tmp_path / "users.csv").filter(
        (pl.col("region") == "south") & (pl.col("age_bucket") == "25-34")
    )
    segment = pl.col("customer_id").is_in(users["customer_id"].implode())

    def named_share(after: bool, where: pl.Expr) -> float:
        return float(views(ev, after, where)["category"].is_in(["cat_00", "cat_15"]).mean())

    assert named_share(after=False, where=segment) < 0.1
    assert named_share(after=True, where=segment) > 0.6
    assert named_share(after=True, where=~segment) < 0.1


# --------------------------------------------------------------------------- refused in one line naming the field


@pytest.mark.parametrize(
    ("shock", "message"),
    [
        ({"kind": "boom", "start_day": 3}, "generator.shocks[0].kind: 'boom'; known: category_surge, price_shift"),
        ({"kind": "category_surge", "start_day": 3, "category": 1}, "shocks[0].factor: required for a category_surge"),
        (
            {"kind": "price_shift", "start_day": 3, "factor": 1.1, "count": 2},
            "shocks[0].count: not a key of a price_shift shock; its keys: kind, start_day, factor, category",
        ),
        (
            {"kind": "price_shift", "start_day": 30, "factor": 1.1},
            "shocks[0].start_day: 30; must be a whole day from 1",
        ),
        ({"kind": "price_shift", "start_day": 0, "factor": 1.1}, "shocks[0].start_day: 0; must be a whole day from 1"),
        ({"kind": "price_shift", "start_day": 3, "factor": 0}, "shocks[0].factor: 0; must be a number > 0"),
        ({"kind": "category_surge", "start_day": 3, "category": 1, "factor": 0.5}, "factor: 0.5; a surge's factor"),
        ({"kind": "category_surge", "start_day": 3, "category": "cat_24", "factor": 2}, "category: 'cat_24'; must be"),
        ({"kind": "new_products", "start_day": 3, "count": 0, "share": 0.1}, "shocks[0].count: 0; must be a whole"),
        ({"kind": "new_products", "start_day": 3, "count": 5, "share": 1.0}, "shocks[0].share: 1.0; must be"),
        ({"kind": "taste_change", "start_day": 3, "segment": {"city": "x"}}, "segment.city: not a user attribute"),
        ({"kind": "taste_change", "start_day": 3, "segment": {"region": "nort"}}, "segment.region: 'nort'; known:"),
        (
            {"kind": "taste_change", "start_day": 3, "segment": {"gender": "F"}, "categories": []},
            "shocks[0].categories: []; must be a non-empty list",
        ),
    ],
)
def test_a_bad_shock_is_refused_naming_its_field(shock: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        SynthConfig(**{**BASE, "shocks": [shock]})
    assert message in str(caught.value) and "\n" not in str(caught.value)


def test_new_product_shares_must_leave_room_for_the_catalogue() -> None:
    waves = [{"kind": "new_products", "start_day": 3, "count": 5, "share": 0.6}] * 2
    with pytest.raises(ConfigError, match="generator.shocks: the new_products shares add up to 1.2"):
        SynthConfig(**{**BASE, "shocks": waves})


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("[{kind:boom,start_day:3}]", "shocks[0].kind = 'boom': must be one of 'category_surge'"),
        ("[{kind:category_surge,start_day:3,category:cat_01,factr:2}]", "shocks[0].factr = 2: unknown key"),
        ("[{kind:category_surge,start_day:3,category:cat_01}]", "shocks[0].factor = null: is required"),
        (
            "[{kind:new_products,start_day:3,count:2,share:0.1,factor:2}]",
            "factor = 2.0: is not a key of a new_products",
        ),
        ("[{kind:category_surge,start_day:3,category:shoes,factor:2}]", "category = 'shoes': must be a category index"),
        ("[{kind:taste_change,start_day:3,segment:{}}]", "shocks[0].segment = {}: must name one or more"),
        ("{kind:price_shift}", 'data.generator.shocks = {"kind":"price_shift"}: must be a list'),
    ],
)
def test_the_config_schema_refuses_a_bad_shock_naming_its_field(override: str, message: str) -> None:
    from recsys_cli.config import compose

    with pytest.raises(ConfigError) as caught:
        compose("ingest", [f"+data.generator.shocks={override}"])
    text = str(caught.value)
    assert text.startswith("config 'ingest': data.generator.shocks") and message in text and "\n" not in text


def test_the_schema_names_the_keys_and_values_the_generator_reads() -> None:
    from recsys_cli.schemas import groups

    for kind, cls in synth_shocks.KINDS.items():
        required, optional_keys = groups.SHOCK_KEYS[kind]
        assert {*required, *optional_keys} == {f.name for f in fields(cls)}, kind
    assert set(groups.SHOCK_KEYS) == set(synth_shocks.KINDS)
    for attribute, values in synth_shocks.SEGMENT_VALUES.items():
        assert typing.get_args(groups.Segment.model_fields[attribute].annotation) == values


def test_the_drift_preset_composes_and_builds_its_shocks() -> None:
    from recsys_cli.config import build, compose

    source = build(compose("ingest", ["data=synth_drift"]).data)
    kinds = [shock.KIND for shock in source.generator.shocks]
    assert kinds == ["category_surge", "price_shift", "new_products", "taste_change"]
    assert {shock.start_day for shock in source.generator.shocks} == {60}
