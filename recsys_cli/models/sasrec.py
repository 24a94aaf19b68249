"""SASRec (Kang & McAuley, 2018): causal self-attention over each user's recent
items predicts the next one. Trained with a full softmax over the catalogue at
every position, which works best on small catalogues (MovieLens, the demo
shop); with `negatives` > 0, a sampled softmax over the target and that many
items drawn uniformly (shared by the batch) replaces it, so a catalogue of
100k items costs the same per step as one of a few hundred. The item table is
shared between input and output.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch
from torch.utils.data import TensorDataset

from recsys_cli.errors import ConfigError
from recsys_cli.models.data import TrainData
from recsys_cli.models.lightning import NeuralRecommender, RecModule
from recsys_cli.models.state import check_range, tensor


class SASRecModule(RecModule):
    sequences: torch.Tensor  # (n_users, max_len) buffer: each user's recent items, saved with the weights
    causal: torch.Tensor

    def __init__(
        self,
        n_users: int,
        n_items: int,
        max_len: int = 50,
        dim: int = 64,
        heads: int = 2,
        layers: int = 2,
        dropout: float = 0.2,
        lr: float = 1e-3,
        weight_decay: float = 0.0,
        negatives: int = 0,
    ) -> None:
        super().__init__(n_users, n_items, lr, weight_decay)
        self.negatives = negatives
        self.pad = n_items  # an extra row: the padding item
        self.item = torch.nn.Embedding(n_items + 1, dim, padding_idx=self.pad)
        # The table is also the output layer: N(0, 1/dim) rows give logits of unit scale
        # at the start (the default N(0, 1) starts them at std sqrt(dim) and a loss near
        # 50, which Adam spends many epochs shrinking).
        torch.nn.init.normal_(self.item.weight, std=dim**-0.5)
        with torch.no_grad():
            self.item.weight[self.pad].zero_()
        self.position = torch.nn.Embedding(max_len, dim)
        torch.nn.init.normal_(self.position.weight, std=dim**-0.5)
        layer = torch.nn.TransformerEncoderLayer(dim, heads, dim * 4, dropout, batch_first=True, norm_first=True)
        self.encoder = torch.nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.norm = torch.nn.LayerNorm(dim)
        self.dropout = torch.nn.Dropout(dropout)
        self.register_buffer("sequences", torch.full((n_users, max_len), self.pad, dtype=torch.long))
        self.register_buffer(
            "causal", torch.triu(torch.ones(max_len, max_len, dtype=torch.bool), diagonal=1), persistent=False
        )

    def encode(self, items: torch.Tensor) -> torch.Tensor:
        """(batch, len) item indices -> (batch, len, dim) states, each seeing only its past."""
        positions = torch.arange(items.shape[1], device=items.device)
        x = self.dropout(self.item(items) * self.item.embedding_dim**0.5 + self.position(positions))
        length = items.shape[1]
        causal = torch.zeros(length, length, device=items.device).masked_fill(self.causal[:length, :length], -torch.inf)
        # Padding keys get a large finite penalty, not -inf: with left padding a padded
        # query may see only padded keys, and an all -inf row would make NaNs.
        padding = torch.zeros(items.shape, device=items.device).masked_fill(items == self.pad, -1e9)
        with _without_fast_path():
            h = self.encoder(x, mask=causal, src_key_padding_mask=padding)
        return self.norm(h)

    def loss(self, batch: Any) -> torch.Tensor:
        (seq,) = batch
        inputs, targets = seq[:, :-1], seq[:, 1:]
        states = self.encode(inputs)
        if self.negatives > 0:
            return self._sampled_loss(states, targets)
        logits = states @ self.item.weight[: self.n_items].T
        targets = targets.masked_fill(targets == self.pad, -100)
        return torch.nn.functional.cross_entropy(
            logits.reshape(-1, self.n_items), targets.reshape(-1), ignore_index=-100
        )

    def _sampled_loss(self, states: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Softmax over the target and shared uniform negatives (a negative equal to
        the target is masked); uniform sampling needs no log-q correction."""
        keep = targets != self.pad
        h, target = states[keep], targets[keep]
        negatives = torch.randint(1, self.n_items, (self.negatives,), device=h.device)
        positive = (h * self.item(target)).sum(-1, keepdim=True)
        negative = (h @ self.item(negatives).T).masked_fill(negatives[None, :] == target[:, None], -torch.inf)
        logits = torch.cat([positive, negative], dim=1)
        return torch.nn.functional.cross_entropy(logits, torch.zeros_like(target))

    def score_users(self, users: torch.Tensor) -> torch.Tensor:
        states = self.encode(self.sequences[users])[:, -1]
        return states @ self.item.weight[: self.n_items].T


@contextmanager
def _without_fast_path() -> Iterator[None]:
    """PyTorch's inference fast path for encoder layers returns NaN for left-padded
    rows under these masks (seen with torch 2.13); the regular path is exact."""
    previous = torch.backends.mha.get_fastpath_enabled()
    torch.backends.mha.set_fastpath_enabled(False)
    try:
        yield
    finally:
        torch.backends.mha.set_fastpath_enabled(previous)


class SASRec(NeuralRecommender):
    def __init__(
        self,
        max_len: int = 50,
        dim: int = 64,
        heads: int = 2,
        layers: int = 2,
        dropout: float = 0.2,
        lr: float = 1e-3,
        weight_decay: float = 0.0,
        negatives: int = 0,
        train_stride: int | None = None,
        **kwargs: Any,
    ) -> None:
        if train_stride is not None and train_stride < 1:
            raise ConfigError(f"model.train_stride must be a positive number of items or null, got {train_stride}")
        super().__init__(
            max_len=max_len,
            dim=dim,
            heads=heads,
            layers=layers,
            dropout=dropout,
            lr=lr,
            weight_decay=weight_decay,
            negatives=negatives,
            train_stride=train_stride,
            **kwargs,
        )

    def _module(self, n_users: int, n_items: int) -> SASRecModule:
        p = self.params
        return SASRecModule(
            n_users,
            n_items,
            p["max_len"],
            p["dim"],
            p["heads"],
            p["layers"],
            p["dropout"],
            p["lr"],
            p["weight_decay"],
            p["negatives"],
        )

    def build_module(self, data: TrainData) -> SASRecModule:
        module = self._module(data.n_users, data.n_items)
        seqs = data.sequence_matrix(self.params["max_len"])
        module.sequences.copy_(torch.as_tensor(np.where(seqs < 0, module.pad, seqs)))
        return module

    def train_dataset(self, data: TrainData) -> TensorDataset:
        """Rows of max_len + 1 items (inputs and shifted targets): each user's latest
        ones, or with `train_stride` windows over the whole stored history."""
        length, stride = self.params["max_len"] + 1, self.params["train_stride"]
        seqs = data.sequence_windows(length, stride) if stride else data.sequence_matrix(length)
        seqs = seqs[(seqs >= 0).sum(axis=1) >= 2]
        return TensorDataset(torch.as_tensor(np.where(seqs < 0, data.n_items, seqs)))

    def module_from_state(self, state: dict[str, np.ndarray]) -> SASRecModule:
        """Sized by the vocabularies; each stored sequence may hold items and the padding row only."""
        assert self.users is not None and self.items is not None
        n_users, n_items = len(self.users), len(self.items)
        check_range(state, "sequences", (n_users, self.params["max_len"]), 0, n_items + 1)
        tensor(state, "item.weight", (n_items + 1, None), "f")
        return self._module(n_users, n_items)
