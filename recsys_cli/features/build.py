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
from recsys_cli.features.aggregates import item_aggregates, user_aggregates
from recsys_cli.features.interactions import Dedup, interactions
from recsys_cli.features.sequences import sequences
from recsys_cli.features.vocab import Vocabulary
from recsys_cli.splits.base import PART, TRAIN, VAL
from recsys_cli.splits.targets import COLD, TargetSpec, ground_truth, history_parts

TABLES = ("interactions", "sequences", "user_features", "item_features")


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


@dataclass
class FeatureSet:
    cutoff: datetime
    frames: dict[str, pl.DataFrame]
    vocab: dict[str, Vocabulary]

    def write(self, folder: Path) -> dict[str, int]:
        for name, frame in self.frames.items():
            (folder / name).parent.mkdir(parents=True, exist_ok=True)
            frame.write_parquet(folder / f"{name}.parquet")
        (folder / "vocab.json").write_text(json.dumps({k: v.to_json() for k, v in self.vocab.items()}, indent=1))
        return {name: frame.height for name, frame in self.frames.items()}


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
    history = assigned.filter(pl.col(PART).is_in(history_parts(part))).drop(PART)
    # One table at a time: collecting them together runs the four group-bys over
    # the history at once and multiplies peak memory.
    collected = {
        name: lf.collect(engine="streaming") for name, lf in _tables(history, cutoff, cfg, items, users, target).items()
    }
    for j, frames in enumerate(ranker_windows(history, cutoff, cfg, target, items, users)):
        collected |= {f"ranker/{j}/{name}": frame for name, frame in frames.items()}
    counts = {c: history.group_by(c).len().collect(engine="streaming") for c in (Col.USER, Col.ITEM)}
    return FeatureSet(cutoff, collected, _vocabularies(counts, collected, cfg))


def _tables(
    history: pl.LazyFrame,
    cutoff: datetime,
    cfg: FeatureConfig,
    items: pl.LazyFrame | None,
    users: pl.LazyFrame | None,
    target: TargetSpec,
) -> dict[str, pl.LazyFrame]:
    windows = list(cfg.windows_days)
    user_feats = user_aggregates(history, items, cutoff, windows)
    if users is not None:
        known = (
            users.filter(pl.col(Col.SIGNUP_AT).is_null() | (pl.col(Col.SIGNUP_AT) < pl.lit(cutoff, dtype=Timestamp)))
            if Col.SIGNUP_AT in users.collect_schema().names()
            else users
        )
        user_feats = known.join(user_feats, on=Col.USER, how="full", coalesce=True).sort(Col.USER)
    return {
        "interactions": interactions(history, cutoff, cfg.weights, cfg.half_life_days, cfg.dedup, target.excluded()),
        "sequences": sequences(history, cfg.max_len),
        "user_features": user_feats,
        "item_features": item_aggregates(history, items, cutoff, windows),
    }


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
        start = cutoff - timedelta(days=cfg.ranker_label_days + j * cfg.ranker_stride_days)
        end = start + timedelta(days=cfg.ranker_label_days)
        ts = pl.col(Col.TS)
        inner = history.filter(ts < pl.lit(end, dtype=Timestamp)).with_columns(
            pl.when(ts < pl.lit(start, dtype=Timestamp)).then(pl.lit(TRAIN)).otherwise(pl.lit(VAL)).alias(PART)
        )
        before = inner.filter(pl.col(PART) == TRAIN).drop(PART)
        frames = {
            name: lf.collect(engine="streaming") for name, lf in _tables(before, start, cfg, items, users, spec).items()
        }
        frames["labels"] = (
            ground_truth(inner, spec, VAL).filter(~pl.col(COLD)).select(Col.USER, Col.ITEM).collect(engine="streaming")
        )
        out.append(frames)
    return out


def _vocabularies(
    counts: dict[str, pl.DataFrame], frames: dict[str, pl.DataFrame], cfg: FeatureConfig
) -> dict[str, Vocabulary]:
    """Ids by how often they occur in the history; attributes by how many users
    or items carry them."""
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
