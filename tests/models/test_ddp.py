"""Training on several processes (`trainer=ddp`, gloo on the CPU) gives one
process's answer: every training example is seen once per epoch across the ranks,
the validation NDCG that early stopping follows is the metric over all validation
users, and one run folder is written, by rank 0.

The fits run `recsys train` itself, as a user would (Lightning starts the second
rank by running the command again), on one process and on two, both with
`trainer=ddp`: under DDP the batches are shuffled from the seed and the epoch, so
one rank and two see the same global batches (models/sharding.py); a fit outside
DDP keeps torch's RandomSampler shuffle, as before.

Tolerance. With `model.dropout=0` (dropout masks are drawn per rank and can never
agree with one process's), two ranks take one process's steps, except that each rank normalises its loss over its own
half of the batch (SASRec: a mean over its positions; the two-tower model: a softmax
over its own in-batch negatives) and the gradient sums are rounded in another order.
Those move a few scores a little, which can swap near-tied items for a user or two.
A user's NDCG@10 lies in [0, 1], so one user's change moves the mean over N users by
at most 1/N: the validation NDCG must agree within 1/N (0.0135 for the 74 users
here). Measured on this shop with seed 42: 0.0025 (SASRec) and 0.0007 (two-tower);
with seeds 1 and 2 as well, at most 0.0072 and 0.0086, while one process's NDCG
moves by 0.028 (SASRec) and 0.017 (two-tower) between those three seeds.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from torch.utils.data import BatchSampler, RandomSampler
from typer.testing import CliRunner

from recsys_cli.cli import app
from recsys_cli.errors import ConfigError
from recsys_cli.models.sharding import ShardedBatches

runner = CliRunner()


# ----------------------------------------------------------------------------- sharding


def epoch(n: int, batch_size: int, world: int, number: int = 0, seed: int = 7) -> list[list[list[int]]]:
    """Each rank's batches in one epoch: [rank][batch] -> indices."""
    ranks = []
    for rank in range(world):
        sampler = ShardedBatches(n, batch_size, seed=seed, rank=rank, world=world)
        sampler.set_epoch(number)
        ranks.append(list(sampler))
    return ranks


@pytest.mark.parametrize("world", [1, 2, 3, 4])
@pytest.mark.parametrize(("n", "batch_size"), [(10, 4), (33, 8), (17, 16), (64, 8), (9, 1)])
def test_every_example_is_seen_once_per_epoch_across_ranks(n: int, batch_size: int, world: int) -> None:
    if min(n, batch_size) < world:
        with pytest.raises(ConfigError, match=f"cannot be shared by {world} DDP ranks"):
            epoch(n, batch_size, world)
        return
    for number in range(3):
        ranks = epoch(n, batch_size, world, number)
        seen = sorted(i for batches in ranks for batch in batches for i in batch)
        assert seen == list(range(n))
        assert len({len(batches) for batches in ranks}) == 1  # DDP meets once per step: same count everywhere
        assert all(batch for batches in ranks for batch in batches)  # and no rank ever gets an empty batch
        assert all(len(ShardedBatches(n, batch_size, rank=r, world=world)) == len(ranks[r]) for r in range(world))


def test_the_ranks_share_out_one_process_global_batches() -> None:
    """With the same seed, W ranks' k-th batches together are one process's k-th batch."""
    (alone,) = epoch(50, 8, 1, number=1)
    ranks = epoch(50, 8, 2, number=1)
    joined = [sorted(a + b) for a, b in zip(*ranks, strict=True)]
    assert joined == [sorted(batch) for batch in alone]
    assert [len(batch) for batch in ranks[0]] == [4] * 6 + [1]  # 50 = 6 x 8 + 2: the last global batch is 2


def test_each_epoch_reshuffles_and_the_seed_repeats_it() -> None:
    first, second = epoch(40, 40, 1, number=0)[0][0], epoch(40, 40, 1, number=1)[0][0]
    assert first != second and sorted(first) == sorted(second)
    assert epoch(40, 8, 2, number=3) == epoch(40, 8, 2, number=3)
    assert epoch(40, 8, 2, seed=1) != epoch(40, 8, 2, seed=2)


def test_a_last_batch_too_small_for_every_rank_joins_the_one_before() -> None:
    ranks = epoch(17, 8, 4)  # 17 = 2 x 8 + 1: one example cannot go to four ranks
    assert [len(batches) for batches in ranks] == [2, 2, 2, 2]
    assert sum(len(batch) for batches in ranks for batch in batches[-1:]) == 9


def test_one_process_outside_ddp_shuffles_as_a_random_sampler_always_has() -> None:
    torch.manual_seed(3)
    ours = [list(ShardedBatches(23, 5, seed=11)) for _ in range(2)]
    torch.manual_seed(3)
    theirs = [list(BatchSampler(RandomSampler(range(23)), 5, drop_last=False)) for _ in range(2)]
    assert ours == theirs and ours[0] != ours[1]


def test_validation_batches_keep_the_order() -> None:
    ranks = [list(ShardedBatches(7, 4, shuffle=False, rank=r, world=2)) for r in range(2)]
    assert ranks == [[[0, 2], [4, 6]], [[1, 3], [5]]]


# ----------------------------------------------------------------------------- two processes

EPOCHS = 2
COMMON = [f"trainer.max_epochs={EPOCHS}", "trainer.enable_progress_bar=false", "model.dropout=0"]
# Lightning's own launcher finds its rank in these; none may leak in from outside.
RANK_VARIABLES = ("RANK", "LOCAL_RANK", "NODE_RANK", "GROUP_RANK", "WORLD_SIZE", "SLURM_PROCID", "SLURM_NTASKS")


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 20,000-event synthetic shop, split and featured (74 validation users)."""
    root = tmp_path_factory.mktemp("ddp-shop")
    data = f"paths.data_dir={root}"
    for args in (
        ["datasets", "synth", data, "data.generator.n_events=20000", "data.generator.n_days=90"],
        ["ingest", data],
        ["split", data],
        ["features", data],
    ):
        result = runner.invoke(app, args, catch_exceptions=False)
        assert result.exit_code == 0, result.output
    return root


def train(shop: Path, runs: Path, devices: int, *overrides: str) -> subprocess.CompletedProcess[str]:
    """`recsys train trainer=ddp` on `devices` processes, in a process of its own (a
    process group would outlive the fit in this one)."""
    env = {k: v for k, v in os.environ.items() if k not in RANK_VARIABLES}
    env |= {"OMP_NUM_THREADS": "1", "COLUMNS": "250"}  # COLUMNS: one log line per epoch, not wrapped
    args = [f"paths.data_dir={shop}", f"runs_dir={runs}", *COMMON, "trainer=ddp", f"trainer.devices={devices}"]
    command = [sys.executable, "-m", "recsys_cli", "train", *args, *overrides]
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600, check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done


def only_run(runs: Path) -> Path:
    (run,) = (p for p in runs.glob("*/*") if p.is_dir())
    return run


def metrics(run: Path) -> dict[str, float]:
    return dict(json.loads((run / "metrics.json").read_text()))


def part(run: Path) -> str:
    (line,) = (line for line in (run / "config.yaml").read_text().splitlines() if line.startswith("part:"))
    return line.split(":", 1)[1].strip()


@pytest.mark.parametrize(
    ("overrides", "variable", "value", "worker"),
    [
        (["trainer=ddp", "trainer.devices=2"], "LOCAL_RANK", "1", True),  # Lightning's launcher
        (["trainer=ddp", "trainer.devices=2"], "RANK", "3", True),  # torchrun
        (["trainer=ddp", "trainer.devices=1", "trainer.num_nodes=2"], "NODE_RANK", "1", True),
        (["trainer=ddp", "trainer.devices=8"], "SLURM_PROCID", "5", True),
        (["trainer=ddp", "trainer.devices=2"], "LOCAL_RANK", "0", False),  # rank 0
        (["trainer=ddp", "trainer.devices=2"], "RANK", "", False),
        (["trainer=ddp", "trainer.devices=1"], "LOCAL_RANK", "1", False),  # one process: no job to share
        (["model=popularity"], "SLURM_PROCID", "2", False),  # one of several sweep workers under srun
    ],
)
def test_a_worker_rank_is_named_by_its_launcher_in_a_multi_process_fit(
    monkeypatch: pytest.MonkeyPatch, overrides: list[str], variable: str, value: str, worker: bool
) -> None:
    from recsys_cli.config import compose
    from recsys_cli.tasks.train import is_worker_rank

    for name in RANK_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv(variable, value)
    model = [] if any(o.startswith("model=") for o in overrides) else ["model=sasrec"]
    assert is_worker_rank(compose("train", [*model, *overrides])) is worker


def test_a_worker_rank_fits_each_part_but_writes_and_yields_nothing(
    shop: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """part=val+test on rank 1: the validation fit, then the refit for what it chose;
    no run folder, no result to print. (The fit itself is replaced here: it would
    wait for rank 0; the two-process tests below run it for real.)"""
    from recsys_cli.config import compose
    from recsys_cli.tasks import train as task

    fits: list[tuple[str, int, Path | None]] = []

    def fit(cfg: object, model: Any, data: object, validation: object, workdir: Path | None, *_: object) -> None:
        fits.append(("val" if validation is not None else "test", int(model.params["trainer"]["max_epochs"]), workdir))
        model.best_epoch = 2

    for name in RANK_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("LOCAL_RANK", "1")
    monkeypatch.setattr(task, "_fit", fit)
    runs = tmp_path / "runs"
    overrides = [f"paths.data_dir={shop}", f"runs_dir={runs}", "model=bpr_mf", "trainer=ddp", "trainer.devices=2"]
    assert list(task.run_parts(compose("train", [*overrides, "trainer.max_epochs=5", "part=val+test"]))) == []
    assert fits == [("val", 5, None), ("test", 2, None)]  # the refit trains for the chosen best epoch
    assert not runs.exists() or not any(runs.rglob("*"))


@pytest.mark.parametrize(("model", "parts"), [("sasrec", "val+test"), ("two_tower", "val")])
def test_two_processes_train_to_one_process_validation_ndcg_and_rank_zero_alone_writes(
    shop: Path, tmp_path: Path, model: str, parts: str
) -> None:
    train(shop, tmp_path / "one", 1, f"model={model}")
    alone = metrics(only_run(tmp_path / "one"))
    done = train(shop, tmp_path / "two", 2, f"model={model}", f"part={parts}")

    # One run folder per part, written by rank 0; its tables printed once.
    runs = sorted(p for p in (tmp_path / "two").glob("*/*") if p.is_dir())
    assert sorted(part(run) for run in runs) == sorted(parts.split("+"))
    assert done.stdout.count("run written:") == len(runs)
    assert done.stdout.count("Metrics (val)") == 1
    (val,) = (run for run in runs if part(run) == "val")
    together = metrics(val)

    # Early stopping followed the NDCG over all validation users: the best epoch's
    # logged value is what rank 0 then measures on the whole window with the best weights.
    epochs = re.findall(
        r"epoch \d+/\d+, train/loss [\d.]+, val/ndcg@10 [\d.]+ \(best ([\d.]+) at epoch (\d+)\)", done.stderr
    )
    assert len(epochs) == EPOCHS, done.stderr  # one line per epoch, not one per rank
    assert int(epochs[-1][1]) == together["best_epoch"]
    assert float(epochs[-1][0]) == pytest.approx(together["val/ndcg@10"], abs=1e-4)

    users = together["val/users"]
    assert users == alone["val/users"] == 74
    assert together["val/ndcg@10"] == pytest.approx(alone["val/ndcg@10"], abs=1 / users)
