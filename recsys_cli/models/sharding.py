"""Mini-batches shared out across DDP ranks, each example once per epoch.

Lightning's own sharding (`use_distributed_sampler`) wraps a loader's sampler in a
DistributedSampler. Our loaders sample whole batches (slices of in-memory tensors),
so it would shard *batches*, each rank drawing its own shuffle from its own random
state (ranks whose states drift apart see some examples twice and others never),
and pad an odd count of batches with a repeated one; validation users would be
padded with repeats too. `ShardedBatches` shards by itself instead, and the shared
fit (models/lightning.py) turns Lightning's off. Outside DDP it shuffles as the
loaders always have (torch's RandomSampler, drawing each epoch's seed from the
global random state), so a fit on one device is unchanged. Under DDP:

- one permutation per epoch from (seed, epoch), the same on every rank, cut into
  global batches of `batch_size`, of which each rank takes every world-th example:
  each example once per epoch over all ranks, nothing padded;
- those global batches are the same on any number of ranks, so with DDP's average
  of the ranks' gradients `batch_size` means the same on any number of devices (the
  global batch), and W ranks take the steps of one rank (`trainer=ddp
  trainer.devices=1`), up to float rounding, wherever a loss does not depend on
  which examples share a batch;
- every rank has the same number of batches (DDP meets once per step) and none is
  empty: a last batch too small to give each rank an example joins the one before.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch
from torch.utils.data import Sampler

from recsys_cli.errors import ConfigError


def placement() -> tuple[int, int]:
    """(rank, world size) of this process in the running process group; (0, 1) outside one."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


class ShardedBatches(Sampler[list[int]]):
    """This rank's share of each global batch of `n` examples' indices.

    Rank and world size are read when iterated (the process group exists only once
    the Trainer has set up), unless given. Under DDP (or with them given), each
    epoch's order comes from `seed` (None: the global seed) and `set_epoch`, which
    Lightning calls at each epoch's start; in one process without a process group,
    from a seed drawn off the global random state, as RandomSampler does. Without
    `shuffle` the order is 0..n-1.

    >>> [list(ShardedBatches(7, 4, shuffle=False, rank=r, world=2)) for r in (0, 1)]
    [[[0, 2], [4, 6]], [[1, 3], [5]]]
    >>> list(ShardedBatches(5, 4, shuffle=False, rank=1, world=2))  # 1 left over: joins the first batch
    [[1, 3]]
    """

    def __init__(
        self,
        n: int,
        batch_size: int,
        shuffle: bool = True,
        seed: int | None = None,
        rank: int | None = None,
        world: int | None = None,
    ) -> None:
        self.n, self.batch_size, self.shuffle = n, batch_size, shuffle
        # Unseeded, the global seed (set by seed_everything, the same on every rank):
        # read, never drawn, so creating a loader leaves the random state alone.
        self.seed = torch.initial_seed() if seed is None else seed
        self.given = (rank, world)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _placement(self) -> tuple[int, int, bool]:
        """(rank, world size, whether the order must agree across processes)."""
        rank, world = self.given
        if rank is not None and world is not None:
            return rank, world, True
        rank, world = placement()
        return rank, world, torch.distributed.is_available() and torch.distributed.is_initialized()

    def _order(self, shared: bool) -> torch.Tensor:
        if not self.shuffle:
            return torch.arange(self.n)
        if shared:
            return torch.randperm(self.n, generator=torch.Generator().manual_seed((self.seed + self.epoch) % 2**63))
        # RandomSampler's own draw, so one process's fits shuffle exactly as they always have.
        generator = torch.Generator()
        generator.manual_seed(int(torch.empty((), dtype=torch.int64).random_().item()))
        return torch.randperm(self.n, generator=generator)

    def _starts(self, world: int) -> np.ndarray:
        starts = np.arange(0, self.n, self.batch_size)
        if starts.size > 1 and self.n - starts[-1] < world:
            starts = starts[:-1]
        return starts

    def __len__(self) -> int:
        return int(self._starts(self._placement()[1]).size)

    def __iter__(self) -> Iterator[list[int]]:
        rank, world, shared = self._placement()
        if world > 1 and min(self.n, self.batch_size) < world:
            what = f"{self.n} examples" if self.n < world else f"a batch of {self.batch_size} (model.batch_size)"
            raise ConfigError(f"{what} cannot be shared by {world} DDP ranks: fewer than one each")
        order = self._order(shared)
        starts = self._starts(world)
        for start, end in zip(starts, [*starts[1:], self.n], strict=True):
            yield order[int(start) : int(end)][rank::world].tolist()
