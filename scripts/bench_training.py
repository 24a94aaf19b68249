"""Training throughput of the neural models on a prepared feature set.

Each model trains for `--warmup + --steps` mini-batches through the same
Lightning loop as `recsys train` (no validation); the steps after the warm-up
are timed and reported as examples per second: (user, item) pairs for BPR-MF
and the two-tower model, sequences for SASRec, candidate pairs for the ranker's
deep & cross network. Everything runs in this process, one model after another.

    SHOP=bench_data/ingest/synth-e10000000-d180-s42-2024-01-01/features/synth
    python scripts/bench_training.py --features $SHOP/global_temporal-engagement/default/fold-0/val
    python scripts/bench_training.py --features DIR --models sasrec --override model.negatives=256 --accelerator gpu

The ranker (`--models ranker`) needs a feature set built with `features=ranker`;
fitting its candidate generators is not part of the timed steps.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import lightning.pytorch as L
import torch

from recsys_cli.config import compose
from recsys_cli.models.data import TrainData


class StepTimer(L.Callback):
    """Wall time and examples of each training batch after the warm-up."""

    def __init__(self, warmup: int) -> None:
        self.warmup, self.times, self.examples = warmup, [], []  # type: ignore[var-annotated]
        self._start = 0.0

    def on_train_batch_start(self, trainer: L.Trainer, module: L.LightningModule, batch: Any, batch_idx: int) -> None:
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        self._start = time.perf_counter()

    def on_train_batch_end(
        self, trainer: L.Trainer, module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        if batch_idx >= self.warmup:
            self.times.append(time.perf_counter() - self._start)
            self.examples.append(int(batch[0].shape[0]))


def measure(name: str, data: TrainData, overrides: list[str], warmup: int, steps: int) -> dict[str, Any]:
    from hydra.utils import instantiate

    cfg = compose("train", [f"model={name}", *overrides])
    model = instantiate(cfg.model, _convert_="all")
    L.seed_everything(42, verbose=False)
    from recsys_cli.models.lightning import shuffled_batches, trainer_options

    if name == "ranker":
        module, examples = model.network_examples(data)
        loader = shuffled_batches(examples, model.params["batch_size"])
    else:
        model.seen = (data.matrix > 0).tocsr()
        module = model.build_module(data)
        module.seen = model.seen
        loader = shuffled_batches(model.train_dataset(data), model.params["batch_size"])
    timer = StepTimer(warmup)
    options = trainer_options(model.params["trainer"]) | {
        "max_epochs": 1,
        "limit_train_batches": warmup + steps,
        "logger": False,
        "enable_checkpointing": False,
        "enable_progress_bar": False,
        "enable_model_summary": False,
        "callbacks": [timer],
    }
    L.Trainer(**options).fit(module, loader)
    per_step = statistics.median(timer.times)
    return {
        "model": name,
        "overrides": overrides,
        "batch_size": model.params["batch_size"],
        "steps_timed": len(timer.times),
        "median_step_s": per_step,
        "examples_per_s": statistics.median(e / t for e, t in zip(timer.examples, timer.times, strict=True)),
        "parameters": sum(p.numel() for p in module.parameters()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--features", type=Path, required=True, help="a feature set folder (fold-N/val)")
    parser.add_argument("--models", nargs="+", default=["bpr_mf", "two_tower", "sasrec"])
    parser.add_argument("--override", action="append", default=[], help="extra Hydra override (repeatable)")
    parser.add_argument("--accelerator", default="cpu")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--out", type=Path, default=Path("bench_data/training.json"))
    args = parser.parse_args()

    data = TrainData.from_features(args.features)
    trainer = [f"trainer.accelerator={args.accelerator}", "trainer.enable_progress_bar=false"]
    if args.accelerator == "gpu":
        trainer.append("trainer=gpu")
    results = [measure(m, data, [*trainer, *args.override], args.warmup, args.steps) for m in args.models]
    report = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}",
        "device": torch.cuda.get_device_name() if args.accelerator == "gpu" else "cpu",
        "features": str(args.features),
        "users": data.n_users,
        "items": data.n_items,
        "interactions": int(data.matrix.nnz),
        "results": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    print(f"{report['device']}: {data.n_users:,} users, {data.n_items:,} items, {data.matrix.nnz:,} interactions")
    for r in results:
        print(
            f"{r['model']:>10} {' '.join(args.override):<28} batch {r['batch_size']:>5}  "
            f"{r['median_step_s'] * 1000:8.1f} ms/step  {r['examples_per_s']:>12,.0f} examples/s"
        )


if __name__ == "__main__":
    main()
