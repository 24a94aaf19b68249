"""Cold start from popularity, on hand-made tables: an unknown user's segment
(first with enough items, in the request's order) blended with the hour of day,
then global; an unknown segment, value or hour falls through to what is known;
exclusions and the request's filters are respected; a short answer is topped up
from global with scores that keep it in descending order; `which` names the source."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from recsys_cli.registry.package_tables import ITEM_COLUMNS
from recsys_cli.serving.catalogue import Catalogue
from recsys_cli.serving.fallbacks import Fallbacks, Picked

IDS = ["g1", "g2", "g3", "g4", "n1", "n2", "s1", "h1", "h2"]


def table(rows: list[tuple], keys: list[str]) -> pl.DataFrame:
    """Rows of (*keys, item_id, users), ranked by users within each key as export does."""
    frame = pl.DataFrame(rows, schema=[*keys, "item_id", "users"], orient="row")
    rank = pl.col("users").rank("ordinal", descending=True)
    rank = rank.over(keys) if keys else rank
    return frame.with_columns(pl.col("users").alias("events"), rank.cast(pl.UInt32).alias("rank"))


@pytest.fixture
def cat() -> Catalogue:
    frame = pl.DataFrame({"item_id": IDS, "index": range(1, len(IDS) + 1)}).with_columns(
        pl.lit(None, dtype=dtype).alias(name)
        for name, dtype in ITEM_COLUMNS.items()
        if name not in ("item_id", "index")
    )
    return Catalogue.from_items(frame.select(list(ITEM_COLUMNS)).cast(dict(ITEM_COLUMNS)))  # type: ignore[arg-type]


@pytest.fixture
def fb(cat: Catalogue) -> Fallbacks:
    tables = {
        "global": table([("g1", 100), ("g2", 80), ("g3", 50), ("g4", 20), ("gone", 10)], []),
        "hour_of_day": table([(14, "h1", 40), (14, "n1", 20), (14, "h2", 10)], ["hour_of_day"]),
        "segments": table(
            [
                ("region", "north", "n1", 30),
                ("region", "north", "n2", 15),
                ("region", "south", "s1", 5),
                ("device", "mobile", "g3", 9),
                ("device", "mobile", "g4", 9),
                ("device", "mobile", "n2", 3),
            ],
            ["segment", "value"],
        ),
    }
    return Fallbacks.from_tables(tables, cat)


def ids(cat: Catalogue, picked: Picked) -> list[str]:
    return cat.ids(picked.items)


def test_no_context_answers_with_global_popularity_scored_in_zero_one(cat: Catalogue, fb: Fallbacks) -> None:
    out = fb.pick({}, None, 3)
    assert ids(cat, out) == ["g1", "g2", "g3"] and out.which == "global"
    assert out.scores.tolist() == [1.0, 0.8, 0.5]


def test_an_item_the_model_does_not_know_is_never_proposed(cat: Catalogue, fb: Fallbacks) -> None:
    out = fb.pick({}, None, 10)
    assert ids(cat, out) == ["g1", "g2", "g3", "g4"]  # "gone" is not in the catalogue


def test_a_segment_with_enough_items_answers_alone(cat: Catalogue, fb: Fallbacks) -> None:
    out = fb.pick({"region": "north"}, None, 2)
    assert ids(cat, out) == ["n1", "n2"] and out.which == "segment:region=north"
    assert out.scores.tolist() == [1.0, 0.5]


def test_a_short_segment_is_topped_up_from_global_in_descending_order(cat: Catalogue, fb: Fallbacks) -> None:
    out = fb.pick({"region": "north"}, None, 4)
    assert ids(cat, out) == ["n1", "n2", "g1", "g2"] and out.which == "segment:region=north+global"
    assert out.scores.tolist() == [1.0, 0.5, 0.5, 0.5]
    assert np.all(np.diff(out.scores) <= 0)


def test_the_first_segment_with_enough_items_wins_in_request_order(cat: Catalogue, fb: Fallbacks) -> None:
    # south holds one item, too few for 2: mobile, next in the request, has 3
    out = fb.pick({"region": "south", "device": "mobile"}, None, 2)
    assert out.which == "segment:device=mobile" and ids(cat, out) == ["g3", "g4"]  # tie broken by index


def test_without_a_segment_holding_enough_the_one_holding_most_answers(cat: Catalogue, fb: Fallbacks) -> None:
    out = fb.pick({"region": "south", "device": "mobile"}, None, 5)
    assert out.which == "segment:device=mobile+global" and ids(cat, out)[:3] == ["g3", "g4", "n2"]


def test_an_unknown_segment_or_value_falls_back_to_global(cat: Catalogue, fb: Fallbacks) -> None:
    assert fb.pick({"region": "atlantis"}, None, 2).which == "global"
    assert fb.pick({"planet": "mars"}, None, 2).which == "global"


def test_segment_and_hour_are_blended(cat: Catalogue, fb: Fallbacks) -> None:
    out = fb.pick({"region": "north"}, 14, 4)
    # n1 is in both (0.5*1 + 0.5*0.5), h1 tops its hour (0.5*1), n2 (0.5*0.5), h2 (0.5*0.25)
    assert ids(cat, out) == ["n1", "h1", "n2", "h2"] and out.which == "segment:region=north+hour:14"
    assert out.scores.tolist() == [0.75, 0.5, 0.25, 0.125]


def test_the_hour_weight_sets_the_hours_share(cat: Catalogue, fb: Fallbacks) -> None:
    segment_only = Fallbacks(fb.everyone, fb.hourly, fb.segments, hour_weight=0.0)
    assert cat.ids(segment_only.pick({"region": "north"}, 14, 2).items) == ["n1", "n2"]


def test_an_hour_alone_answers_and_an_unknown_hour_is_skipped(cat: Catalogue, fb: Fallbacks) -> None:
    out = fb.pick({}, 14, 2)
    assert ids(cat, out) == ["h1", "n1"] and out.which == "hour:14"
    assert out.scores.tolist() == [1.0, 0.5]
    assert fb.pick({}, 3, 2).which == "global"


def test_excluded_and_refused_items_are_skipped_everywhere(cat: Catalogue, fb: Fallbacks) -> None:
    seen = cat.item_index(["n1", "g1"])
    no_g2 = cat.item_index(["g2"])[0]
    out = fb.pick({"region": "north"}, None, 3, exclude=seen, admit=lambda items: items != no_g2)
    assert ids(cat, out) == ["n2", "g3", "g4"]


def test_exclusions_count_when_judging_whether_a_segment_has_enough(cat: Catalogue, fb: Fallbacks) -> None:
    out = fb.pick({"region": "north", "device": "mobile"}, None, 2, exclude=cat.item_index(["n1"]))
    assert out.which == "segment:device=mobile"


def test_top_up_fills_a_short_answer_below_its_last_score(cat: Catalogue, fb: Fallbacks) -> None:
    items, scores = cat.item_index(["g2", "s1"]), np.array([0.9, 0.6])
    out = fb.top_up(items, scores, 4, exclude=cat.item_index(["g1"]))
    assert ids(cat, out) == ["g2", "s1", "g3", "g4"] and out.which == "global"
    assert out.scores.tolist() == [0.9, 0.6, 0.5, 0.2]


def test_top_up_leaves_a_full_answer_alone(cat: Catalogue, fb: Fallbacks) -> None:
    out = fb.top_up(cat.item_index(["s1"]), np.array([-3.0]), 1)
    assert ids(cat, out) == ["s1"] and out.which is None


def test_top_up_scores_stay_below_a_negative_model_score(cat: Catalogue, fb: Fallbacks) -> None:
    out = fb.top_up(cat.item_index(["s1"]), np.array([-3.0]), 3)
    assert ids(cat, out) == ["s1", "g1", "g2"] and out.scores.tolist() == [-3.0, -3.0, -3.0]


def test_empty_tables_answer_nothing(cat: Catalogue) -> None:
    empty = Fallbacks.from_tables({"global": table([], []).cast({"item_id": pl.String, "users": pl.UInt32})}, cat)
    out = empty.pick({"region": "north"}, 14, 3)
    assert out.items.tolist() == [] and out.which is None


def test_hour_weight_outside_zero_one_is_refused(cat: Catalogue) -> None:
    with pytest.raises(ValueError, match="hour_weight"):
        Fallbacks.from_tables({}, cat, hour_weight=1.5)
