"""The deep & cross network of the ranker stage (Wang et al., 2021), and the
candidate-list NDCG both ranker backends are judged by."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import lightning.pytorch as L
import numpy as np
import torch

from recsys_cli.models.lightning import MONITOR, MONITOR_K


class DCNModule(L.LightningModule):
    """Embeddings of every categorical plus the numeric features form x0; cross
    layers x_{l+1} = x0 * (W x_l + b) + x_l model feature interactions explicitly
    (demographics x category, popularity x affinity) beside a plain MLP."""

    numeric_mean: torch.Tensor
    numeric_std: torch.Tensor

    def __init__(
        self,
        cardinalities: Sequence[int],
        n_numeric: int,
        embedding_dim: int = 16,
        cross_layers: int = 3,
        hidden: Sequence[int] = (256, 128),
        dropout: float = 0.1,
        lr: float = 1e-3,
        weight_decay: float = 1e-5,
    ) -> None:
        super().__init__()
        self.lr, self.weight_decay = lr, weight_decay
        self.embeddings = torch.nn.ModuleList(torch.nn.Embedding(c, embedding_dim) for c in cardinalities)
        width = embedding_dim * len(cardinalities) + n_numeric
        self.cross = torch.nn.ModuleList(torch.nn.Linear(width, width) for _ in range(cross_layers))
        layers: list[torch.nn.Module] = []
        previous = width
        for size in hidden:
            layers += [torch.nn.Linear(previous, size), torch.nn.ReLU(), torch.nn.Dropout(dropout)]
            previous = size
        self.deep = torch.nn.Sequential(*layers)
        self.head = torch.nn.Linear(width + previous, 1)
        # Generator scores and counts come on very different scales; the training
        # pairs' mean and spread are kept with the weights.
        self.register_buffer("numeric_mean", torch.zeros(n_numeric))
        self.register_buffer("numeric_std", torch.ones(n_numeric))
        self._val: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []

    def forward(self, categorical: torch.Tensor, numeric: torch.Tensor) -> torch.Tensor:
        numeric = (numeric - self.numeric_mean) / self.numeric_std
        x0 = torch.cat([*(e(categorical[:, j]) for j, e in enumerate(self.embeddings)), numeric], dim=-1)
        x = x0
        for layer in self.cross:
            x = x0 * layer(x) + x
        return self.head(torch.cat([x, self.deep(x0)], dim=-1)).squeeze(-1)

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        categorical, numeric, label, _ = batch
        loss = torch.nn.functional.binary_cross_entropy_with_logits(self(categorical, numeric), label)
        self.log("train/loss", loss, prog_bar=True, on_step=False, on_epoch=True)
        return loss

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        categorical, numeric, label, group = batch
        self._val.append((self(categorical, numeric).detach(), label, group))

    def on_validation_epoch_end(self) -> None:
        if self._val:
            parts = [torch.cat(t).cpu() for t in zip(*self._val, strict=True)]
            # Under mixed precision the logits come out in bf16, which numpy cannot hold.
            logits, label, group = parts[0].float().numpy(), parts[1].numpy(), parts[2].numpy()
            self.log(MONITOR, float(grouped_ndcg(group, logits, label, MONITOR_K)), prog_bar=True)
            loss = torch.nn.functional.binary_cross_entropy_with_logits(torch.as_tensor(logits), torch.as_tensor(label))
            self.log("val/loss", loss)
        self._val = []

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.parameters(), lr=self.lr, weight_decay=self.weight_decay)


def grouped_ndcg(group: np.ndarray, scores: np.ndarray, labels: np.ndarray, k: int) -> float:
    """Mean NDCG@k of each group's list ranked by `scores`, over groups with a positive."""
    group, scores, labels = np.asarray(group), np.asarray(scores, np.float64), np.asarray(labels, np.float64)
    if group.size == 0:
        return 0.0

    def dcg(order: np.ndarray) -> np.ndarray:
        g = group[order]
        starts = np.r_[0, np.flatnonzero(g[1:] != g[:-1]) + 1]
        position = np.arange(g.size) - np.repeat(starts, np.diff(np.r_[starts, g.size]))
        gain = np.where(position < k, labels[order] / np.log2(position + 2), 0.0)
        return np.bincount(np.searchsorted(np.unique(g), g), weights=gain)

    actual = dcg(np.lexsort((-scores, group)))
    ideal = dcg(np.lexsort((-labels, group)))
    has = ideal > 0
    return float((actual[has] / ideal[has]).mean()) if has.any() else 0.0
