"""`recsys recommend`: batch top-K from a trained run, with the lake's ids."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import numpy as np
import polars as pl
from omegaconf import DictConfig

from recsys_cli.console import NullReporter, Reporter
from recsys_cli.data.given_users import MatchedUsers, lake_key, match_user_ids, read_user_ids
from recsys_cli.data.lake import decoding, open_inputs
from recsys_cli.data.schema import Col
from recsys_cli.errors import ConfigError, OutputError
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
) -> tuple[Path, int, int]:
    """Top-k per user, best first. With `exclude_seen`, the items the run's target
    counts as already seen (its `seen_events`, as the ground truth does) are left
    out: under the shop default `engagement` only carted or bought ones, so viewed
    items may come back (re-targeting). A user whose unseen items run out before k
    (a small catalogue, a heavy user) gets fewer rows: never an excluded item
    or the unknown-item placeholder padded in with a score of -inf.

    Returns the file written, the number of users and how many of them the model
    did not know (they get its cold-start answer, popularity for most models).
    Users from `users_file` may be raw ids (pseudonymised with the lake's key) or
    lake pseudonyms; the output holds them as they were given, so raw ids are
    written only to a file the caller names outside the run folder."""
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ConfigError(f"--k: items per user must be a whole number >= 1, got {k!r}")
    reporter = reporter or NullReporter()
    cfg = load_run_config(run_dir)
    reads = [run_dir / MODEL, run_dir / CONFIG, users_file if users_file else Path(str(cfg.split_dir))]
    target = out or run_dir / "recommendations.parquet"
    path = claim_file(target, RECOMMENDATIONS, reads)
    model = Recommender.load(run_dir / MODEL)
    assert model.users is not None and model.items is not None
    k = min(k, len(model.items.tokens))  # never more than the catalogue (--k 10**20 allocates nothing)
    if users_file:
        given = read_user_ids(users_file)
        known = pl.Series(model.users.tokens[1:], dtype=pl.String)
        matched = match_user_ids(given, known, lake_key(_lake_dir(cfg)), users_file)
        _refuse_raw_ids_in_run_folder(matched, users_file, out, run_dir)
        users, unknown = matched.lake_ids, matched.unknown
    else:
        users = given = _evaluated_users(cfg.split_dir, cfg.fold, cfg.get("part", "val"))
        unknown = 0
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
            Col.USER: np.repeat(given.to_numpy(), top.shape[1]),  # the ids as given, raw or not
            Col.ITEM: tokens.gather(top.ravel()),
            "rank": np.tile(np.arange(1, top.shape[1] + 1, dtype=np.int32), top.shape[0]),
            "score": np.concatenate(scores).ravel() if scores else np.zeros(0, np.float32),
        }
    ).filter(pl.col("score") > -np.inf)
    tmp = path.with_name(f".{path.name}.tmp-{uuid.uuid4().hex[:8]}")  # unique: two writers never share one
    frame.write_parquet(tmp, metadata={PARQUET_KIND_KEY: RECOMMENDATIONS})  # so a rerun may replace it
    tmp.replace(path)
    return target, users.len(), unknown


def _lake_dir(cfg: DictConfig) -> Path | None:
    """The run's lake: its own `lake_dir`, else the one its split was cut from."""
    lake = cfg.get("lake_dir")
    if lake and (Path(str(lake)) / "manifest.json").is_file():
        return Path(str(lake))
    split_manifest = Path(str(cfg.get("split_dir", ""))) / "manifest.json"
    try:
        recorded = json.loads(split_manifest.read_text())["lake"]["path"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return Path(recorded)


def _refuse_raw_ids_in_run_folder(matched: MatchedUsers, users_file: Path, out: Path | None, run_dir: Path) -> None:
    """Run folders hold lake pseudonyms only: ids that may be raw go back only to a file the caller names."""
    if matched.only_pseudonyms:
        return
    if out is None or run_dir.resolve() in Path(out).resolve().parents:
        raise OutputError(
            f"{users_file}: holds raw or unknown user ids, and recommendations keep the ids as given: "
            "name an output file of yours outside the run folder with --out (run folders keep pseudonyms only)"
        )


def _evaluated_users(split_dir: str, fold: str, part: str) -> pl.Series:
    with decoding(*open_inputs((Path(split_dir), "split"))):
        targets = pl.read_parquet(Path(split_dir) / fold / f"{part}_targets.parquet")
    return targets.filter(~pl.col(COLD))[Col.USER].unique().sort()
