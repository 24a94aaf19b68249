"""`recsys train`: fit one model on a fold's features, score the validation window."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl
import scipy.sparse as sp
from omegaconf import DictConfig

from recsys_cli.console import NullReporter, Reporter
from recsys_cli.data.schema import Col
from recsys_cli.errors import SplitError
from recsys_cli.evaluation.metrics import summarise
from recsys_cli.models.base import Recommender
from recsys_cli.models.data import TrainData
from recsys_cli.registry.run_dir import METRICS, MODEL, new_run
from recsys_cli.splits.targets import COLD


@dataclass
class TrainResult:
    run: Path
    metrics: dict[str, float]


def run(cfg: DictConfig, reporter: Reporter | None = None) -> TrainResult:
    from hydra.utils import instantiate

    reporter = reporter or NullReporter()
    folder = Path(cfg.features_dir) / cfg.fold / "val"
    if not (folder / "vocab.json").is_file():
        raise SplitError(
            f"{folder}: no features here; run `recsys split` and `recsys features` with the same overrides"
        )
    data = TrainData.from_features(folder)
    model: Recommender = instantiate(cfg.model, _convert_="all")
    reporter.start(f"fitting {type(model).__name__}", total=1)
    model.fit(data)
    reporter.advance()
    targets = pl.read_parquet(Path(cfg.split_dir) / cfg.fold / "val_targets.parquet").filter(~pl.col(COLD))
    metrics = evaluate(model, data, targets, list(cfg.eval.ks), int(cfg.eval.batch_users), "val/")
    metrics["val/users"] = float(targets[Col.USER].n_unique())
    out = new_run(cfg.runs_dir, cfg.model._target_.rsplit(".", 1)[-1].lower(), cfg)
    model.save(out / MODEL)
    (out / METRICS).write_text(json.dumps(metrics, indent=2))
    return TrainResult(out, metrics)


def evaluate(
    model: Recommender, data: TrainData, targets: pl.DataFrame, ks: list[int], batch: int, prefix: str
) -> dict[str, float]:
    """Full ranking over all items for every evaluated user, in batches of users."""
    users = targets[Col.USER].unique(maintain_order=True).sort()
    rows = pl.DataFrame({Col.USER: users}).with_row_index("row")
    coded = targets.join(rows, on=Col.USER).with_columns(
        pl.Series("item", data.item_index(targets.join(rows, on=Col.USER)[Col.ITEM]))
    )
    truth = sp.csr_matrix(
        (np.ones(coded.height, np.float32), (coded["row"].to_numpy(), coded["item"].to_numpy())),
        shape=(users.len(), data.n_items),
    )
    index = data.user_index(users)
    k = max(ks)
    recs = (
        np.concatenate([model.recommend(index[i : i + batch], k)[0] for i in range(0, index.size, batch)])
        if (index.size)
        else np.zeros((0, k), dtype=np.int64)
    )
    return summarise(recs, truth, ks, data.n_items, prefix)
