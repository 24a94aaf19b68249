"""Matrix factorisation trained with BPR (Rendle et al., 2009): for each observed
(user, item) pair, one unobserved item sampled uniformly should score lower."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch.utils.data import TensorDataset

from recsys_cli.models.data import TrainData
from recsys_cli.models.lightning import NeuralRecommender, RecModule
from recsys_cli.models.state import tensor


class BPRModule(RecModule):
    def __init__(self, n_users: int, n_items: int, dim: int = 64, lr: float = 1e-3, weight_decay: float = 0.0) -> None:
        super().__init__(n_users, n_items, lr, weight_decay)
        self.user = torch.nn.Embedding(n_users, dim)
        self.item = torch.nn.Embedding(n_items, dim)
        torch.nn.init.normal_(self.user.weight, std=0.1)
        torch.nn.init.normal_(self.item.weight, std=0.1)

    def loss(self, batch: Any) -> torch.Tensor:
        users, positives = batch
        negatives = torch.randint(1, self.n_items, positives.shape, device=positives.device)
        u = self.user(users)
        diff = (u * self.item(positives)).sum(-1) - (u * self.item(negatives)).sum(-1)
        return -torch.nn.functional.logsigmoid(diff).mean()

    def score_users(self, users: torch.Tensor) -> torch.Tensor:
        return self.user_vectors(users) @ self.item_vectors().T

    def item_vectors(self) -> torch.Tensor:
        return self.item.weight

    def user_vectors(self, users: torch.Tensor) -> torch.Tensor:
        return self.user(users)


class BPRMF(NeuralRecommender):
    def __init__(self, dim: int = 64, lr: float = 1e-3, weight_decay: float = 0.0, **kwargs: Any) -> None:
        super().__init__(dim=dim, lr=lr, weight_decay=weight_decay, **kwargs)

    def build_module(self, data: TrainData) -> BPRModule:
        p = self.params
        return BPRModule(data.n_users, data.n_items, p["dim"], p["lr"], p["weight_decay"])

    def train_dataset(self, data: TrainData) -> TensorDataset:
        """Every observed (user, item) pair once per epoch."""
        coo = data.matrix.tocoo()
        return TensorDataset(torch.as_tensor(coo.row, dtype=torch.long), torch.as_tensor(coo.col, dtype=torch.long))

    def module_from_state(self, state: dict[str, np.ndarray]) -> BPRModule:
        assert self.users is not None and self.items is not None
        n_users, n_items = len(self.users), len(self.items)
        dim = tensor(state, "user.weight", (n_users, None), "f").shape[1]
        tensor(state, "item.weight", (n_items, dim), "f")
        return BPRModule(n_users, n_items, dim)
