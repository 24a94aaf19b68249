"""`recsys recommend`: batch top-K from a trained run, with the lake's ids."""

from __future__ import annotations

import uuid
from pathlib import Path

import numpy as np
import polars as pl

from recsys_cli.console import NullReporter, Reporter
from recsys_cli.data.lake import decoding, open_inputs
from recsys_cli.data.schema import Col
from recsys_cli.errors import SourceError
from recsys_cli.models.base import Recommender
from recsys_cli.registry.outputs import PARQUET_KIND_KEY, RECOMMENDATIONS, claim_file
from recsys_cli.registry.run_dir import CONFIG, MODEL, load_run_config
from recsys_cli.splits.targets import COLD

BATCH = 4096


def run(
    run_dir: Path,
    k: int,
    users_file: Path | None,
    out: Path | None,
    exclude_seen: bool = True,
    reporter: Reporter | None = None,
) -> tuple[Path, int]:
    """Top-k per user, best first. A user whose unseen items run out before k
    (a small catalogue, a heavy user) gets fewer rows: never an excluded item
    or the unknown-item placeholder padded in with a score of -inf."""
    reporter = reporter or NullReporter()
    cfg = load_run_config(run_dir)
    reads = [run_dir / MODEL, run_dir / CONFIG, users_file if users_file else Path(str(cfg.split_dir))]
    target = out or run_dir / "recommendations.parquet"
    path = claim_file(target, RECOMMENDATIONS, reads)
    model = Recommender.load(run_dir / MODEL)
    users = _users(users_file) if users_file else _evaluated_users(cfg.split_dir, cfg.fold, cfg.get("part", "val"))
    assert model.users is not None and model.items is not None
    index = pl.DataFrame({Col.USER: users}).select(model.users.encode(Col.USER))[Col.USER].to_numpy().astype(np.int64)
    items, scores = [], []
    reporter.start(f"top-{k} for {index.size:,} users", total=index.size)
    for i in range(0, index.size, BATCH):
        top, score = model.recommend(index[i : i + BATCH], k, exclude_seen=exclude_seen)
        items.append(top)
        scores.append(score)
        reporter.advance(top.shape[0])
    top = np.concatenate(items) if items else np.zeros((0, k), np.int64)
    tokens = pl.Series(model.items.tokens)
    frame = pl.DataFrame(
        {
            Col.USER: np.repeat(users.to_numpy(), top.shape[1]),
            Col.ITEM: tokens.gather(top.ravel()),
            "rank": np.tile(np.arange(1, top.shape[1] + 1, dtype=np.int32), top.shape[0]),
            "score": np.concatenate(scores).ravel() if scores else np.zeros(0, np.float32),
        }
    ).filter(pl.col("score") > -np.inf)
    tmp = path.with_name(f".{path.name}.tmp-{uuid.uuid4().hex[:8]}")  # unique: two writers never share one
    frame.write_parquet(tmp, metadata={PARQUET_KIND_KEY: RECOMMENDATIONS})  # so a rerun may replace it
    tmp.replace(path)
    return target, users.len()


def _users(path: Path) -> pl.Series:
    frame = pl.read_parquet(path) if path.suffix == ".parquet" else pl.read_csv(path, infer_schema=False)
    if Col.USER not in frame.columns:
        raise SourceError(f"{path}: missing required column(s) {Col.USER}; found {frame.columns}")
    return frame[Col.USER].cast(pl.String).unique(maintain_order=True)


def _evaluated_users(split_dir: str, fold: str, part: str) -> pl.Series:
    with decoding(*open_inputs((Path(split_dir), "split"))):
        targets = pl.read_parquet(Path(split_dir) / fold / f"{part}_targets.parquet")
    return targets.filter(~pl.col(COLD))[Col.USER].unique().sort()
