"""One prepared feature set: everything a model may know when asked to predict
a part (validation or test) of one fold, computed from the events before it."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

import polars as pl

from recsys_cli.data.schema import Col, Timestamp
from recsys_cli.features.aggregates import catalogue, item_behaviour, user_behaviour, with_catalogue
from recsys_cli.features.interactions import Dedup, interactions
from recsys_cli.features.sequences import sequences
from recsys_cli.features.vocab import Vocabulary
from recsys_cli.splits.base import PART, TRAIN, VAL
from recsys_cli.splits.targets import COLD, TargetSpec, ground_truth, history_parts

TABLES = ("interactions", "sequences", "user_features", "item_features")
LABELS = "labels"  # the extra table of each ranker window
# The key each table is unique on and sorted by: an engine that computes a table in
# shards puts them back in this order.
KEYS: dict[str, tuple[str, ...]] = {
    "interactions": (Col.USER, Col.ITEM),
    "sequences": (Col.USER,),
    "user_features": (Col.USER,),
    "item_features": (Col.ITEM,),
    LABELS: (Col.USER, Col.ITEM),
}


@dataclass(frozen=True)
class FeatureConfig:
    weights: Mapping[str, float | str] = field(
        default_factory=lambda: {"view": 1.0, "click": 1.0, "add_to_cart": 3.0, "purchase": 5.0, "rating": "value"}
    )
    half_life_days: float | None = None
    dedup: Dedup = "sum"
    max_len: int = 50
    windows_days: Sequence[float] = (1, 7, 30)
    vocab_min_count: int = 1
    vocab_columns: Sequence[str] = (
        Col.USER,
        Col.ITEM,
        Col.CATEGORY,
        Col.BRAND,
        "region",
        "age_bucket",
        "gender",
        "occupation",
    )
    # Labelled windows for a second-stage ranker: window j holds the features as of
    # cutoff - label_days - j * stride_days and, as labels, the target positives of
    # the label_days after that; all of it before the cutoff. 0 = none.
    ranker_windows: int = 0
    ranker_label_days: float = 14.0
    ranker_stride_days: float = 7.0


@dataclass(frozen=True)
class Written:
    """What a feature part's manifest entry records."""

    cutoff: datetime
    rows: dict[str, int]
    vocab_sizes: dict[str, int]


@dataclass
class FeatureSet:
    cutoff: datetime
    frames: dict[str, pl.DataFrame]
    vocab: dict[str, Vocabulary]

    def write(self, folder: Path) -> dict[str, int]:
        for name, frame in self.frames.items():
            write_table(folder, name, frame)
        write_vocab(folder, self.vocab)
        return {name: frame.height for name, frame in self.frames.items()}


def write_table(folder: Path, name: str, frame: pl.DataFrame) -> None:
    """One table of a part's folder (`ranker/0/labels` in a subfolder)."""
    (folder / name).parent.mkdir(parents=True, exist_ok=True)
    frame.write_parquet(folder / f"{name}.parquet")


def write_vocab(folder: Path, vocab: Mapping[str, Vocabulary]) -> None:
    (folder / "vocab.json").write_text(json.dumps({k: v.to_json() for k, v in vocab.items()}, indent=1))


def cutoff_of(assigned: pl.LazyFrame, part: str, fold_cutoff: datetime | None) -> datetime:
    """The fold's cutoff; per-user protocols have none, so the last history event + 1 µs."""
    if fold_cutoff is not None:
        return fold_cutoff
    last = assigned.filter(pl.col(PART).is_in(history_parts(part))).select(pl.col(Col.TS).max()).collect().item()
    return last + timedelta(microseconds=1)


def build(
    assigned: pl.LazyFrame,
    part: str,
    cutoff: datetime,
    cfg: FeatureConfig,
    items: pl.LazyFrame | None = None,
    users: pl.LazyFrame | None = None,
    target: TargetSpec | None = None,
) -> FeatureSet:
    """Features for predicting `part`, from the events of its history parts only;
    with `cfg.ranker_windows`, also the ranker's labelled windows. `target` says
    what a positive is and which items count as already seen (default: purchases)."""
    target = target or TargetSpec()
    history = history_of(assigned, part)
    # One table at a time: collecting them together runs the four group-bys over
    # the history at once and multiplies peak memory.
    collected = {
        name: lf.collect(engine="streaming") for name, lf in _tables(history, cutoff, cfg, items, users, target).items()
    }
    for j, frames in enumerate(ranker_windows(history, cutoff, cfg, target, items, users)):
        collected |= {f"ranker/{j}/{name}": frame for name, frame in frames.items()}
    counts = {c: history.group_by(c).len().collect(engine="streaming") for c in (Col.USER, Col.ITEM)}
    return FeatureSet(cutoff, collected, vocabularies(counts, collected, cfg))


def history_of(assigned: pl.LazyFrame, part: str) -> pl.LazyFrame:
    """The events a model may know when asked to predict `part` (per event: any shard works)."""
    return assigned.filter(pl.col(PART).is_in(history_parts(part))).drop(PART)


def user_table(behaviour: pl.LazyFrame, users: pl.LazyFrame | None, cutoff: datetime) -> pl.LazyFrame:
    """`user_features`: the users table's users signed up before the cutoff (or
    without a signup date), joined with the behaviour of users with history."""
    if users is None:
        return behaviour
    known = (
        users.filter(pl.col(Col.SIGNUP_AT).is_null() | (pl.col(Col.SIGNUP_AT) < pl.lit(cutoff, dtype=Timestamp)))
        if Col.SIGNUP_AT in users.collect_schema().names()
        else users
    )
    return known.join(behaviour, on=Col.USER, how="full", coalesce=True).sort(Col.USER)


def _tables(
    history: pl.LazyFrame,
    cutoff: datetime,
    cfg: FeatureConfig,
    items: pl.LazyFrame | None,
    users: pl.LazyFrame | None,
    target: TargetSpec,
) -> dict[str, pl.LazyFrame]:
    joined = history.join(catalogue(items), on=Col.ITEM, how="left")
    tables = user_tables(history, joined, cutoff, cfg, target)
    tables["user_features"] = user_table(tables["user_features"], users, cutoff)
    tables["item_features"] = with_catalogue(item_behaviour(history, cutoff, cfg.windows_days), items, cutoff)
    return tables


def user_tables(
    history: pl.LazyFrame, joined: pl.LazyFrame, cutoff: datetime, cfg: FeatureConfig, target: TargetSpec
) -> dict[str, pl.LazyFrame]:
    """The tables computed per user (any shard of users gives exactly its users'
    rows): interactions, sequences and the behaviour part of user_features, which
    reads `joined`, the history joined with the items' `catalogue`."""
    return {
        "interactions": interactions(history, cutoff, cfg.weights, cfg.half_life_days, cfg.dedup, target.excluded()),
        "sequences": sequences(history, cfg.max_len),
        "user_features": user_behaviour(joined, cutoff, cfg.windows_days),
    }


def window_bounds(cutoff: datetime, cfg: FeatureConfig, j: int) -> tuple[datetime, datetime]:
    """Ranker window `j`'s cutoff and the end of its label period."""
    start = cutoff - timedelta(days=cfg.ranker_label_days + j * cfg.ranker_stride_days)
    return start, start + timedelta(days=cfg.ranker_label_days)


def window_events(history: pl.LazyFrame, start: datetime, end: datetime) -> pl.LazyFrame:
    """The history before `end`, labelled train before `start` and val after (per event)."""
    ts = pl.col(Col.TS)
    return history.filter(ts < pl.lit(end, dtype=Timestamp)).with_columns(
        pl.when(ts < pl.lit(start, dtype=Timestamp)).then(pl.lit(TRAIN)).otherwise(pl.lit(VAL)).alias(PART)
    )


def window_labels(inner: pl.LazyFrame, spec: TargetSpec) -> pl.LazyFrame:
    """Warm users' positives in the label period of `window_events` (per user), sorted."""
    return ground_truth(inner, spec, VAL).filter(~pl.col(COLD)).select(Col.USER, Col.ITEM)


def ranker_windows(
    history: pl.LazyFrame,
    cutoff: datetime,
    cfg: FeatureConfig,
    target: TargetSpec | None,
    items: pl.LazyFrame | None,
    users: pl.LazyFrame | None,
) -> list[dict[str, pl.DataFrame]]:
    """Each earlier cutoff's tables plus `labels`: warm users' positives in the
    window after it. A ranker learns from these what the next window brings, the
    question it is asked at `cutoff`, without touching anything after `cutoff`."""
    if cfg.ranker_windows <= 0:
        return []
    spec = target or TargetSpec()
    out = []
    for j in range(cfg.ranker_windows):
        start, end = window_bounds(cutoff, cfg, j)
        inner = window_events(history, start, end)
        before = history_of(inner, VAL)
        frames = {
            name: lf.collect(engine="streaming") for name, lf in _tables(before, start, cfg, items, users, spec).items()
        }
        frames[LABELS] = window_labels(inner, spec).collect(engine="streaming")
        out.append(frames)
    return out


def vocabularies(
    counts: dict[str, pl.DataFrame], frames: Mapping[str, pl.DataFrame], cfg: FeatureConfig
) -> dict[str, Vocabulary]:
    """Ids by how often they occur in the history; attributes by how many users
    or items carry them (`frames`: at least the attribute columns of item_features
    and user_features)."""
    vocab = {}
    for column in cfg.vocab_columns:
        if column in counts:
            vocab[column] = Vocabulary.from_counts(counts[column], cfg.vocab_min_count)
            continue
        for table in ("item_features", "user_features"):
            if column in frames[table].columns:
                vocab[column] = Vocabulary.fit(frames[table][column], cfg.vocab_min_count)
                break
    return vocab
