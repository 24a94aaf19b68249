"""`recsys evaluate RUN`: the full offline evaluation of a trained run on one window.

Reads only boxes: the run (its config and model), the split's targets for the
window, the run's feature set (item catalogue attributes, as of the model's
cutoff) and the lake's users table for demographics. Every evaluated user gets
a full ranking over the catalogue (the items the target counts as seen excluded,
as in training and in the ground truth), in batches of users; `evaluation.suite`
does the rest.

The window defaults to the one the run was scored on (`part`); a validation run
may also be scored on the later test window, but a run refitted on train +
validation is never scored on validation, which it trained on.

Cold-start users (unknown to the model, served by its popularity fallback) are
evaluated too (`eval.users=all`) and reported as their own segment; with
`eval.users=warm` only users with training history are, as `recsys train` does.

Outputs go to `RUN/eval/<part>/` (or `out_dir`), built in a temporary folder
and swapped in whole: metrics.json, report.html, per_user.parquet, plots/.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import scipy.sparse as sp
from omegaconf import DictConfig, OmegaConf

from recsys_cli.console import NullReporter, Reporter
from recsys_cli.data.lake import decoding, open_inputs
from recsys_cli.data.schema import Col
from recsys_cli.errors import ConfigError, SplitError
from recsys_cli.evaluation import segments
from recsys_cli.evaluation.fairness import Thresholds
from recsys_cli.evaluation.suite import Inputs, Settings, evaluate
from recsys_cli.features.vocab import Vocabulary
from recsys_cli.models.base import Recommender
from recsys_cli.models.data import TrainData
from recsys_cli.models.validation import Targets
from recsys_cli.registry.outputs import EVALUATION, claim
from recsys_cli.registry.run_dir import CONFIG, MODEL, load_run_config
from recsys_cli.splits.base import TEST, VAL
from recsys_cli.tasks import evaluate_baseline as against

EVAL = "eval"
METRICS, REPORT, PER_USER, PLOTS = "metrics.json", "report.html", "per_user.parquet", "plots"


@dataclass
class EvaluateResult:
    folder: Path
    summary: dict[str, Any]


@dataclass
class _Window:
    """What the run is judged on, and what the model knew."""

    part: str
    run_part: str
    user_ids: pl.Series  # evaluated users, sorted
    targets: Targets
    pairs: pl.DataFrame  # the window's (user_id, item_id) positives of those users


def run(
    run_dir: Path, cfg: DictConfig, reporter: Reporter | None = None, baseline: Path | None = None
) -> EvaluateResult:
    """Evaluate the run in `run_dir` as `cfg` (conf/evaluate.yaml) says; returns
    where the outputs went and the JSON-ready summary. With a `baseline` run of the
    same window, the summary also says where the run loses to it (`slices`)."""
    reporter = reporter or NullReporter()
    run_dir = Path(run_dir)
    run_cfg = load_run_config(run_dir)
    base_cfg = against.check_baseline(run_dir, Path(baseline)) if baseline is not None else None  # before ranking
    settings = settings_from(cfg.eval)
    model = _load_model(run_dir)
    _check_ks(settings, model)
    read = _read_folders(run_cfg)
    with decoding(*read):
        window = _window(run_cfg, cfg, model)
    folder = Path(cfg.out_dir) if cfg.get("out_dir") else run_dir / EVAL / window.part
    reads = evaluation_inputs(run_dir, run_cfg)
    if baseline is not None and base_cfg is not None:
        reads += evaluation_inputs(Path(baseline), base_cfg)  # never written over either
    claim(folder, EVALUATION, reads)  # refuse a wrong out_dir before ranking, not after
    recs, scores = rank(model, window.targets.users, max(settings.ks), int(cfg.batch_users), reporter)
    with decoding(*read):
        inputs = _inputs(run_cfg, cfg, model, window, recs, scores)
    evaluation = evaluate(inputs, settings, reporter)
    summary = _describe(run_dir, run_cfg, cfg, model, window) | evaluation.summary
    if baseline is not None and base_cfg is not None:
        assert model.items is not None
        ours = against.side(window.user_ids, window.pairs, recs, window.targets.truth, model.items, settings.primary)
        summary["slices"] = _slices(Path(baseline), base_cfg, cfg, settings, ours, inputs, reporter)
    reporter.start("writing metrics, plots and report", total=1)
    per_user = per_user_frame(window.user_ids, inputs.user_groups, evaluation.per_user)
    write_outputs(folder, summary, per_user, reads)
    reporter.advance()
    return EvaluateResult(folder, summary)


def _slices(
    baseline: Path,
    base_cfg: DictConfig,
    cfg: DictConfig,
    settings: Settings,
    ours: against.Side,
    inputs: Inputs,
    reporter: Reporter,
) -> dict[str, Any]:
    """Rank the baseline's lists on the same window and compare the two by slice;
    item groups are the evaluated model's (its catalogue, popularity and cutoff)."""
    base = _load_model(baseline)
    _check_ks(settings, base)
    with decoding(*_read_folders(base_cfg)):
        window = _window(base_cfg, cfg, base)
    recs, _ = rank(base, window.targets.users, settings.primary_k, int(cfg.batch_users), reporter)
    assert base.items is not None
    theirs = against.side(window.user_ids, window.pairs, recs, window.targets.truth, base.items, settings.primary)
    reporter.start("error slices against the baseline", total=1)
    tiers = segments.popularity_tiers(inputs.popularity, settings.popularity_tiers)
    section = against.compare(
        ours,
        theirs,
        inputs.user_groups,
        [tiers, *inputs.item_groups],
        min_users=int(settings.thresholds.min_group_users),
        resamples=settings.resamples,
        seed=settings.seed,
        confidence=settings.confidence,
    )
    reporter.advance()
    described = {"run": str(baseline.resolve()), "label": against.label(baseline), "model": type(base).__name__}
    return {"baseline": described, "metric": settings.primary, **section}


def _read_folders(run_cfg: DictConfig) -> tuple[tuple[Path, str], ...]:
    """The split, feature set and lake the evaluation reads, checked against their manifests."""
    folders = [(Path(run_cfg.split_dir), "split"), (Path(run_cfg.features_dir), "features")]
    if run_cfg.get("lake_dir"):
        folders.append((Path(run_cfg.lake_dir), "lake"))
    return open_inputs(*folders)


def settings_from(eval_cfg: DictConfig) -> Settings:
    """The suite's settings from the `eval` config group, with config errors as one line."""
    plain = OmegaConf.to_container(eval_cfg, resolve=True)
    assert isinstance(plain, dict)
    try:
        return Settings(
            ks=[int(k) for k in plain["ks"]],
            primary=str(plain["primary"]),
            resamples=int(plain["bootstrap"]["resamples"]),
            confidence=float(plain["bootstrap"]["confidence"]),
            seed=int(plain["bootstrap"]["seed"]),
            calibration_bins=int(plain["calibration"]["bins"]),
            popularity_tiers={str(k): float(v) for k, v in plain["popularity_tiers"].items()},
            thresholds=Thresholds(**plain["thresholds"]),
        )
    except (ValueError, TypeError, KeyError) as exc:
        raise ConfigError(f"eval: {exc}") from exc


def rank(
    model: Recommender, users: np.ndarray, k: int, batch: int, reporter: Reporter | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Top-k items and their scores for every user over the whole catalogue (the
    target's seen items excluded), a batch of users at a time so the score matrix
    stays small."""
    reporter = reporter or NullReporter()
    reporter.start(f"ranking the catalogue for {users.size:,} users", total=users.size)
    items, scores = [], []
    for start in range(0, users.size, batch):
        top, score = model.recommend(users[start : start + batch], k)
        items.append(top)
        scores.append(score)
        reporter.advance(top.shape[0])
    if not items:
        return np.zeros((0, k), np.int64), np.zeros((0, k), np.float32)
    return np.concatenate(items), np.concatenate(scores)


def _load_model(run_dir: Path) -> Recommender:
    if not (run_dir / MODEL / "model.json").is_file():
        raise ConfigError(f"{run_dir}: no saved model ({MODEL}/model.json); runs are written by `recsys train`")
    return Recommender.load(run_dir / MODEL)


def _check_ks(settings: Settings, model: Recommender) -> None:
    assert model.items is not None
    recommendable = len(model.items) - 1
    if max(settings.ks) > recommendable:
        raise ConfigError(
            f"eval.ks: top-{max(settings.ks)} lists need more than the {recommendable} items this model knows; "
            "lower eval.ks"
        )


def _window(run_cfg: DictConfig, cfg: DictConfig, model: Recommender) -> _Window:
    run_part = str(run_cfg.get("part", VAL))
    part = str(cfg.part) if cfg.get("part") else run_part
    if part not in (VAL, TEST):
        raise ConfigError(f"part must be val or test, got {part!r}")
    if run_part == TEST and part == VAL:
        raise ConfigError(
            "this run was refitted on train + validation; scoring it on val would test it on its own data"
        )
    path = Path(run_cfg.split_dir) / run_cfg.fold / f"{part}_targets.parquet"
    if not path.is_file():
        raise SplitError(f"{path}: no targets for this window; run `recsys split` with the run's settings")
    frame = pl.read_parquet(path, columns=[Col.USER, Col.ITEM])
    assert model.users is not None and model.items is not None
    # The vocabularies are all Targets needs; an empty matrix stands in for the training data.
    vocab = TrainData(model.users, model.items, sp.csr_matrix((len(model.users), len(model.items))))
    if str(cfg.eval.users) not in ("all", "warm"):
        raise ConfigError(f"eval.users must be all or warm, got {cfg.eval.users!r}")
    if cfg.eval.users == "warm":
        known = pl.DataFrame({Col.USER: pl.Series(model.users.tokens[1:], dtype=pl.String)})
        frame = frame.join(known, on=Col.USER, how="semi")
    if frame.height == 0:
        raise SplitError(f"{path}: no users to evaluate in this window")
    return _Window(part, run_part, frame[Col.USER].unique().sort(), Targets.from_frame(frame, vocab), frame)


def _inputs(
    run_cfg: DictConfig,
    cfg: DictConfig,
    model: Recommender,
    window: _Window,
    recs: np.ndarray,
    scores: np.ndarray,
) -> Inputs:
    assert model.popularity is not None and model.items is not None and model.users is not None
    users = window.targets.users
    interactions = interactions_per_user(run_cfg, window.run_part, model.users)
    user_groups = [
        segments.cold_start(users == 0),
        segments.activity(interactions[users], list(cfg.eval.segments.activity_edges)),
        *_user_attributes(run_cfg, window, cfg.eval.segments),
    ]
    catalogue = _catalogue(run_cfg, window.run_part, model.items.tokens)
    categories, is_new = _item_flags(catalogue, float(cfg.eval.new_item_days))
    item_groups = []
    if categories is not None:
        item_groups.append(
            segments.item_attribute(Col.CATEGORY, catalogue[Col.CATEGORY], int(cfg.eval.segments.max_groups))
        )
    if is_new is not None:
        item_groups.append(segments.new_products(is_new))
    probabilities, scored, note = engagement_probabilities(model, users, recs, scores, int(cfg.batch_users))
    return Inputs(
        recs=recs,
        truth=window.targets.truth,
        popularity=np.asarray(model.popularity, dtype=np.float64),
        n_train_users=int((interactions > 0).sum()),
        user_groups=user_groups,
        item_groups=item_groups,
        categories=categories,
        new_items=is_new,
        probabilities=probabilities,
        scored=scored,
        calibration_note=note,
    )


def interactions_per_user(run_cfg: DictConfig, run_part: str, users: Vocabulary) -> np.ndarray:
    """Items each user (by vocabulary index) interacted with before the model's
    cutoff, from the run's feature set: activity counts every interaction, not only
    those the target excludes as seen (the model's `seen`), which may be far fewer."""
    path = Path(run_cfg.features_dir) / run_cfg.fold / run_part / "interactions.parquet"
    if not path.is_file():
        raise SplitError(f"{path}: the run's interactions are missing; rerun `recsys features` with its settings")
    per_user = (
        pl.read_parquet(path, columns=[Col.USER, "weight"])
        .filter(pl.col("weight") > 0)
        .group_by(Col.USER)
        .len()
        .select(users.encode(Col.USER).alias("u"), pl.col("len"))
        .filter(pl.col("u") > 0)
    )
    counts = np.zeros(len(users), dtype=np.int64)
    counts[per_user["u"].to_numpy()] = per_user["len"].to_numpy()
    return counts


def engagement_probabilities(
    model: Recommender, users: np.ndarray, recs: np.ndarray, scores: np.ndarray, batch: int
) -> tuple[np.ndarray | None, np.ndarray | None, str]:
    """The model's engagement probability of every recommended slot, for models
    that give them (`predict_proba(users, items)`), with the users they cover.

    A ranker's scores of its candidates are its calibrated probabilities, so the
    ranking scores are used directly once `predict_proba` confirms it on a sample;
    otherwise `predict_proba` is asked for every slot, a rank at a time.
    """
    predict = getattr(model, "predict_proba", None)
    name = type(model).__name__
    if predict is None:
        return None, None, f"{name} gives ranking scores, not engagement probabilities"
    scored = users != 0
    note = "cold-start users get the popularity fallback, not probabilities, and are left out"
    if not scored.any():
        return None, None, note
    sample = np.flatnonzero(scored)[:256]
    direct = np.clip(scores.astype(np.float64), 0.0, 1.0)
    if np.allclose(predict(users[sample], recs[sample, 0]), direct[sample, 0], atol=1e-6):
        return direct, scored, note
    probs = np.zeros(recs.shape, dtype=np.float64)
    for start in range(0, users.size, batch):
        rows = slice(start, start + batch)
        for r in range(recs.shape[1]):
            probs[rows, r] = predict(users[rows], recs[rows, r])
    return probs, scored, note


def _user_attributes(run_cfg: DictConfig, window: _Window, seg_cfg: DictConfig) -> list[segments.Grouping]:
    """Demographic groupings for the attributes the data has: from the lake's users
    table, or else the window's user features."""
    wanted = [str(a) for a in seg_cfg.user_attributes]
    lake_users = Path(run_cfg.get("lake_dir", "")) / "users.parquet"
    features = Path(run_cfg.features_dir) / run_cfg.fold / window.part / "user_features.parquet"
    source = lake_users if run_cfg.get("lake_dir") and lake_users.is_file() else features
    if not source.is_file():
        return []
    present = [a for a in wanted if a in pl.read_parquet_schema(source)]
    if not present:
        return []
    table = pl.read_parquet(source, columns=[Col.USER, *present]).unique(Col.USER, keep="first")
    joined = pl.DataFrame({Col.USER: window.user_ids}).join(table, on=Col.USER, how="left", maintain_order="left")
    return [segments.from_values(a, joined[a], int(seg_cfg.max_groups)) for a in present]


def _catalogue(run_cfg: DictConfig, run_part: str, tokens: tuple[str, ...]) -> pl.DataFrame:
    """Item attributes as of the model's cutoff, one row per vocabulary item 1..n."""
    path = Path(run_cfg.features_dir) / run_cfg.fold / run_part / "item_features.parquet"
    if not path.is_file():
        raise SplitError(f"{path}: the run's item features are missing; rerun `recsys features` with its settings")
    wanted = [Col.CATEGORY, "age_days", "first_seen_days"]
    columns = [c for c in wanted if c in pl.read_parquet_schema(path)]
    table = pl.read_parquet(path, columns=[Col.ITEM, *columns]).unique(Col.ITEM, keep="first")
    items = pl.DataFrame({Col.ITEM: pl.Series(tokens[1:], dtype=pl.String)})
    return items.join(table, on=Col.ITEM, how="left", maintain_order="left")


def _item_flags(catalogue: pl.DataFrame, new_item_days: float) -> tuple[np.ndarray | None, np.ndarray | None]:
    """Category code per item (for diversity) and the new-product flag: launched
    (or, without launch dates, first seen) fewer than `new_item_days` before the
    cutoff. Index 0, the unknown item, is never recommended and gets code 0."""
    categories = None
    if Col.CATEGORY in catalogue.columns and catalogue[Col.CATEGORY].null_count() < catalogue.height:
        codes = catalogue[Col.CATEGORY].fill_null(segments.UNKNOWN).rank("dense").to_numpy()
        categories = np.concatenate([[0], codes]).astype(np.int64)
    ages = [pl.col(c) for c in ("age_days", "first_seen_days") if c in catalogue.columns]
    if not ages:
        return categories, None
    age = catalogue.select(pl.coalesce(ages)).to_series()
    is_new = (age < new_item_days).fill_null(False).to_numpy()
    return categories, np.concatenate([[False], is_new])


def _describe(
    run_dir: Path, run_cfg: DictConfig, cfg: DictConfig, model: Recommender, window: _Window
) -> dict[str, Any]:
    eval_cfg = OmegaConf.to_container(cfg.eval, resolve=True)
    return {
        "run": str(run_dir.resolve()),
        "model": type(model).__name__,
        "part": window.part,
        "run_part": window.run_part,
        "fold": str(run_cfg.fold),
        "window": _window_bounds(Path(run_cfg.split_dir), str(run_cfg.fold), window.part),
        "created_at": datetime.now(UTC).isoformat(),
        "config": eval_cfg,
    }


def _window_bounds(split_dir: Path, fold: str, part: str) -> dict[str, str | None]:
    """Start and end of the window, from the split manifest (none for per-user splits)."""
    path = split_dir / "manifest.json"
    folds: list[dict[str, Any]] = json.loads(path.read_text()).get("folds", []) if path.is_file() else []
    match: dict[str, Any] = next((f for f in folds if f.get("name") == fold), {})
    start, end = ("val_start", "test_start") if part == VAL else ("test_start", "test_end")
    return {"start": match.get(start), "end": match.get(end)}


def per_user_frame(
    user_ids: pl.Series, groupings: list[segments.Grouping], metrics: dict[str, np.ndarray]
) -> pl.DataFrame:
    """One row per evaluated user: id, segment labels and every per-user metric
    (null where undefined), for analyses the summary does not foresee."""
    groups = {g.name: pl.Series(g.name, g.row_labels().tolist(), dtype=pl.String) for g in groupings}
    values = {name: pl.Series(name, v, nan_to_null=True) for name, v in metrics.items()}
    return pl.DataFrame({Col.USER: user_ids, **groups, **values})


def evaluation_inputs(run_dir: Path, run_cfg: DictConfig) -> list[Path]:
    """What an evaluation reads, which its folder may never overlap (it may sit
    inside the run folder, as RUN/eval/<part> does, but not over its model)."""
    found = [run_dir / MODEL, run_dir / CONFIG]
    return found + [Path(str(run_cfg[key])) for key in ("lake_dir", "split_dir", "features_dir") if run_cfg.get(key)]


def write_outputs(folder: Path, summary: dict[str, Any], per_user: pl.DataFrame, inputs: Sequence[Path] = ()) -> None:
    """Build the whole folder beside its destination, then swap it in: a reader
    sees the previous evaluation or the new one, never half of either. Only an
    earlier evaluation is ever replaced (`data.lake.staged_version`)."""
    from recsys_cli.data.lake import staged_version
    from recsys_cli.evaluation.report import render_report

    html, images = render_report(summary)
    with staged_version(folder, EVALUATION, inputs) as staging:
        (staging / PLOTS).mkdir()
        for name, png in images.items():
            (staging / PLOTS / f"{name}.png").write_bytes(png)
        (staging / REPORT).write_text(html, encoding="utf-8")
        per_user.write_parquet(staging / PER_USER)
        (staging / METRICS).write_text(json.dumps(finite(summary), indent=2, allow_nan=False))


def finite(value: Any) -> Any:
    """Strict JSON: undefined values (a group nobody is in) become null, numpy scalars plain numbers."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float):
        return value if np.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [finite(v) for v in value]
    return value
