"""`recsys explain RUN`: why a two-stage ranker ranks as it does, on its own window.

Reads only boxes: the run (config and model, checked against its manifest and
data digests before anything is loaded; the model is rebuilt from safetensors,
JSON and LightGBM's text models, never unpickled) and the split's targets of the
run's window. A seeded sample of the window's users known to the model gets its
candidate pairs built as the ranker builds them to rank, labelled by what each
user engaged with in the window; `evaluation.explain` does the rest.

Outputs go to `RUN/explain/<part>/` (or `out_dir`), built in a temporary folder
and swapped in whole: explain.json, report.html, contributions.parquet, plots/.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import scipy.sparse as sp
from omegaconf import DictConfig

from recsys_cli.console import NullReporter, Reporter
from recsys_cli.data.lake import decoding, open_inputs
from recsys_cli.data.schema import Col
from recsys_cli.errors import ConfigError, SplitError
from recsys_cli.evaluation.explain import Explanation, Settings, explain, labelled_pairs
from recsys_cli.evaluation.ranker_view import ranker_view
from recsys_cli.models.base import Recommender
from recsys_cli.models.data import TrainData
from recsys_cli.models.validation import Targets
from recsys_cli.registry.outputs import claim
from recsys_cli.registry.run_dir import MODEL, load_run_config
from recsys_cli.splits.base import TEST, VAL
from recsys_cli.tasks.evaluate import evaluation_inputs, finite

EXPLAIN = "explain"
EXPLANATION = "explanation"  # the output kind in the folder's manifest.json
SUMMARY, REPORT, CONTRIBUTIONS, PLOTS = "explain.json", "report.html", "contributions.parquet", "plots"


@dataclass(frozen=True)
class Options:
    part: str | None = None  # None: the window the run was scored on
    out_dir: Path | None = None  # None: RUN/explain/<part>
    users: int = 500  # sampled from the window's known users
    settings: Settings = field(default_factory=Settings)


@dataclass
class ExplainResult:
    folder: Path
    summary: dict[str, Any]


def run(run_dir: Path, options: Options, reporter: Reporter | None = None) -> ExplainResult:
    """Explain the ranker of the run in `run_dir`; returns where the outputs went
    and the JSON-ready summary."""
    reporter = reporter or NullReporter()
    run_dir = Path(run_dir)
    run_cfg = load_run_config(run_dir)
    view = ranker_view(_load_model(run_dir))
    part = window_part(run_cfg, options.part)
    with decoding(*open_inputs((Path(run_cfg.split_dir), "split"))):
        targets = known_targets(run_cfg, part, view.model)
    folder = Path(options.out_dir) if options.out_dir else run_dir / EXPLAIN / part
    reads = evaluation_inputs(run_dir, run_cfg)
    claim(folder, EXPLANATION, reads)  # refuse a wrong out_dir before the work, not after
    chosen = sample_rows(targets.users.size, options.users, options.settings.seed)
    reporter.start(f"scoring the candidates of {chosen.size:,} users", total=1)
    data = labelled_pairs(view, targets.users[chosen], targets.truth[chosen])
    if data.engaged.size == 0:
        raise SplitError(f"{run_dir}: the ranker proposes no candidates to the sampled users; nothing to explain")
    reporter.advance()
    reporter.start("importance, partial dependence and curves", total=1)
    users, items = view.model.users, view.model.items
    explanation = explain(view, data, _tokens(users.tokens), _tokens(items.tokens), options.settings)
    reporter.advance()
    summary = _describe(run_dir, run_cfg, view.model, part, targets.users.size) | explanation.summary
    reporter.start("writing the explanation", total=1)
    write_outputs(folder, summary, explanation, reads)
    reporter.advance()
    return ExplainResult(folder, summary)


def _load_model(run_dir: Path) -> Recommender:
    if not (run_dir / MODEL / "model.json").is_file():
        raise ConfigError(f"{run_dir}: no saved model ({MODEL}/model.json); runs are written by `recsys train`")
    return Recommender.load(run_dir / MODEL)


def window_part(run_cfg: DictConfig, asked: str | None) -> str:
    """The window explained: the run's own unless asked; a run refitted on train +
    validation is never explained on validation, which it trained on."""
    run_part = str(run_cfg.get("part", VAL))
    part = asked or run_part
    if part not in (VAL, TEST):
        raise ConfigError(f"--part must be val or test, got {part!r}")
    if run_part == TEST and part == VAL:
        raise ConfigError("this run was refitted on train + validation; explaining it on val would use its own data")
    return part


def known_targets(run_cfg: DictConfig, part: str, model: Recommender) -> Targets:
    """The window's ground truth for the users the model knows (the others get no
    candidates, only the popularity fallback)."""
    path = Path(run_cfg.split_dir) / run_cfg.fold / f"{part}_targets.parquet"
    if not path.is_file():
        raise SplitError(f"{path}: no targets for this window; run `recsys split` with the run's settings")
    assert model.users is not None and model.items is not None
    known = pl.DataFrame({Col.USER: pl.Series(model.users.tokens[1:], dtype=pl.String)})
    frame = pl.read_parquet(path, columns=[Col.USER, Col.ITEM]).join(known, on=Col.USER, how="semi")
    if frame.height == 0:
        raise SplitError(f"{path}: no user of this window is known to the model; nothing to explain")
    # The vocabularies are all Targets needs; an empty matrix stands in for the training data.
    vocab = TrainData(model.users, model.items, sp.csr_matrix((len(model.users), len(model.items))))
    return Targets.from_frame(frame, vocab)


def sample_rows(n: int, size: int, seed: int) -> np.ndarray:
    """A seeded sample of up to `size` of `n` rows, in order.

    >>> sample_rows(3, 10, 0).tolist()
    [0, 1, 2]
    """
    if n <= size:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size, replace=False))


def _tokens(tokens: Sequence[str]) -> np.ndarray:
    return np.asarray(tokens, dtype=object)


def _describe(run_dir: Path, run_cfg: DictConfig, model: Recommender, part: str, window_users: int) -> dict[str, Any]:
    return {
        "kind": EXPLANATION,
        "run": str(run_dir.resolve()),
        "model": type(model).__name__,
        "part": part,
        "run_part": str(run_cfg.get("part", VAL)),
        "fold": str(run_cfg.fold),
        "window_known_users": int(window_users),
        "created_at": datetime.now(UTC).isoformat(),
    }


def write_outputs(folder: Path, summary: dict[str, Any], explanation: Explanation, inputs: Sequence[Path]) -> None:
    """Build the whole folder beside its destination, then swap it in: a reader
    sees the previous explanation or the new one, never half of either."""
    from recsys_cli.data.lake import staged_version
    from recsys_cli.evaluation.explain_plots import all_plots
    from recsys_cli.evaluation.explain_report import render

    images = all_plots(summary, int(summary["settings"]["top"]))
    with staged_version(folder, EXPLANATION, inputs) as staging:
        (staging / PLOTS).mkdir()
        for name, image in images.items():
            (staging / PLOTS / f"{name}.png").write_bytes(image)
        (staging / REPORT).write_text(render(summary, images), encoding="utf-8")
        explanation.contributions.write_parquet(staging / CONTRIBUTIONS)
        (staging / SUMMARY).write_text(json.dumps(finite(summary), indent=2, allow_nan=False))
