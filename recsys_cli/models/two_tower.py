"""Two-tower retrieval (Yi et al., 2019, "Sampling-bias-corrected neural modeling").

A user tower reads the user id, demographics and activity aggregates; an item
tower reads the item id, category, brand, price and age buckets and popularity
aggregates. Each (user, item) interaction of the batch is a positive and every
other item of the batch a negative. Items enter batches in proportion to their
popularity, so without correction the model learns to push popular items down;
subtracting log q(item) from each logit (the log-q correction) removes that
bias. Optional hard negatives add, per user, the best-scoring items from a
uniform pool: the near misses that in-batch negatives rarely supply.

Scores are cosine similarities, so serving is a maximum inner product search
over normalised item vectors.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch.utils.data import TensorDataset

from recsys_cli.data.schema import Col
from recsys_cli.models.data import TrainData
from recsys_cli.models.lightning import NeuralRecommender, RecModule
from recsys_cli.models.side_features import SideFeatures, encode_side
from recsys_cli.models.state import check_codes, tensor

ITEM_BUCKETS = {"price": 10, "age_days": 8}


class Tower(torch.nn.Module):
    """id embedding + one embedding per categorical + numeric features -> MLP -> unit vector."""

    def __init__(self, n_ids: int, cardinalities: tuple[int, ...], n_numeric: int, dim: int, dropout: float) -> None:
        super().__init__()
        self.id = torch.nn.Embedding(n_ids, dim)
        self.categorical = torch.nn.ModuleList(torch.nn.Embedding(c, dim) for c in cardinalities)
        width = dim * (1 + len(cardinalities)) + n_numeric
        self.mlp = torch.nn.Sequential(
            torch.nn.Linear(width, 2 * dim), torch.nn.ReLU(), torch.nn.Dropout(dropout), torch.nn.Linear(2 * dim, dim)
        )
        torch.nn.init.normal_(self.id.weight, std=0.05)

    def forward(self, ids: torch.Tensor, categorical: torch.Tensor, numeric: torch.Tensor) -> torch.Tensor:
        parts = [self.id(ids), *(emb(categorical[:, j]) for j, emb in enumerate(self.categorical)), numeric]
        return torch.nn.functional.normalize(self.mlp(torch.cat(parts, dim=-1)), dim=-1)


class TwoTowerModule(RecModule):
    user_cat: torch.Tensor  # side features, saved with the weights so a loaded model scores alone
    user_num: torch.Tensor
    item_cat: torch.Tensor
    item_num: torch.Tensor
    log_q: torch.Tensor  # log sampling probability of each item as a batch positive

    def __init__(
        self,
        n_users: int,
        n_items: int,
        user_cards: tuple[int, ...] = (),
        n_user_numeric: int = 0,
        item_cards: tuple[int, ...] = (),
        n_item_numeric: int = 0,
        dim: int = 64,
        dropout: float = 0.1,
        temperature: float = 0.05,
        hard_negatives: int = 0,
        hard_pool: int = 512,
        lr: float = 1e-3,
        weight_decay: float = 0.0,
    ) -> None:
        super().__init__(n_users, n_items, lr, weight_decay)
        self.temperature, self.hard_negatives, self.hard_pool = temperature, hard_negatives, hard_pool
        self.user_tower = Tower(n_users, tuple(user_cards), n_user_numeric, dim, dropout)
        self.item_tower = Tower(n_items, tuple(item_cards), n_item_numeric, dim, dropout)
        self.register_buffer("user_cat", torch.zeros(n_users, len(user_cards), dtype=torch.long))
        self.register_buffer("user_num", torch.zeros(n_users, n_user_numeric))
        self.register_buffer("item_cat", torch.zeros(n_items, len(item_cards), dtype=torch.long))
        self.register_buffer("item_num", torch.zeros(n_items, n_item_numeric))
        self.register_buffer("log_q", torch.zeros(n_items))

    def users(self, index: torch.Tensor) -> torch.Tensor:
        return self.user_tower(index, self.user_cat[index], self.user_num[index])

    def items(self, index: torch.Tensor) -> torch.Tensor:
        return self.item_tower(index, self.item_cat[index], self.item_num[index])

    def loss(self, batch: Any) -> torch.Tensor:
        users, items = batch
        u, v = self.users(users), self.items(items)
        logits = (u @ v.T) / self.temperature - self.log_q[items][None, :]
        # The same item twice in a batch is not a negative for its other user.
        clash = (items[None, :] == items[:, None]) & ~torch.eye(items.numel(), dtype=torch.bool, device=items.device)
        logits = logits.masked_fill(clash, -torch.inf)
        if self.hard_negatives > 0:
            logits = torch.cat([logits, self._hard_logits(u, items)], dim=1)
        target = torch.arange(items.numel(), device=items.device)
        return torch.nn.functional.cross_entropy(logits, target)

    def _hard_logits(self, u: torch.Tensor, positives: torch.Tensor) -> torch.Tensor:
        """Per user, the highest-scoring items of a uniform pool (never its positive)."""
        pool = torch.randint(1, self.n_items, (min(self.hard_pool, self.n_items - 1),), device=u.device)
        with torch.no_grad():
            scores = u @ self.items(pool).T
            scores = scores.masked_fill(pool[None, :] == positives[:, None], -torch.inf)
            chosen = pool[scores.topk(min(self.hard_negatives, pool.numel()), dim=1).indices]
        hard = self.items(chosen.reshape(-1)).reshape(*chosen.shape, -1)
        logits = (u[:, None, :] * hard).sum(-1) / self.temperature
        return logits.masked_fill(chosen == positives[:, None], -torch.inf)

    def score_users(self, users: torch.Tensor) -> torch.Tensor:
        return self.users(users) @ self.items(torch.arange(self.n_items, device=users.device)).T


class TwoTower(NeuralRecommender):
    def __init__(
        self,
        dim: int = 64,
        dropout: float = 0.1,
        temperature: float = 0.05,
        hard_negatives: int = 0,
        hard_pool: int = 512,
        side_features: bool = True,
        lr: float = 1e-3,
        weight_decay: float = 0.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            dim=dim,
            dropout=dropout,
            temperature=temperature,
            hard_negatives=hard_negatives,
            hard_pool=hard_pool,
            side_features=side_features,
            lr=lr,
            weight_decay=weight_decay,
            **kwargs,
        )

    def _module(
        self,
        n_users: int,
        n_items: int,
        user_cards: tuple[int, ...],
        n_user_num: int,
        item_cards: tuple[int, ...],
        n_item_num: int,
    ) -> TwoTowerModule:
        p = self.params
        return TwoTowerModule(
            n_users,
            n_items,
            user_cards,
            n_user_num,
            item_cards,
            n_item_num,
            p["dim"],
            p["dropout"],
            p["temperature"],
            p["hard_negatives"],
            p["hard_pool"],
            p["lr"],
            p["weight_decay"],
        )

    def build_module(self, data: TrainData) -> TwoTowerModule:
        if self.params["side_features"]:
            users = encode_side(data.user_features, Col.USER, data.users, data.vocabularies)
            items = encode_side(data.item_features, Col.ITEM, data.items, data.vocabularies, ITEM_BUCKETS)
        else:
            users, items = SideFeatures.empty(data.n_users), SideFeatures.empty(data.n_items)
        module = self._module(
            data.n_users,
            data.n_items,
            users.cardinalities,
            users.numeric.shape[1],
            items.cardinalities,
            items.numeric.shape[1],
        )
        module.user_cat.copy_(torch.as_tensor(users.categorical))
        module.user_num.copy_(torch.as_tensor(users.numeric))
        module.item_cat.copy_(torch.as_tensor(items.categorical))
        module.item_num.copy_(torch.as_tensor(items.numeric))
        counts = np.asarray((data.matrix > 0).sum(axis=0)).ravel().astype(np.float64)
        module.log_q.copy_(torch.as_tensor(np.log((counts + 1.0) / (counts.sum() + counts.size)), dtype=torch.float32))
        return module

    def train_dataset(self, data: TrainData) -> TensorDataset:
        coo = data.matrix.tocoo()
        return TensorDataset(torch.as_tensor(coo.row, dtype=torch.long), torch.as_tensor(coo.col, dtype=torch.long))

    def module_from_state(self, state: dict[str, np.ndarray]) -> TwoTowerModule:
        """Sized by the vocabularies; the side-feature codes must index their embedding tables."""
        assert self.users is not None and self.items is not None
        n_users, n_items = len(self.users), len(self.items)
        user_cards, item_cards = _cards(state, "user_tower"), _cards(state, "item_tower")
        check_codes(state, "user_cat", n_users, user_cards)
        check_codes(state, "item_cat", n_items, item_cards)
        user_num = tensor(state, "user_num", (n_users, None), "f").shape[1]
        item_num = tensor(state, "item_num", (n_items, None), "f").shape[1]
        return self._module(n_users, n_items, user_cards, user_num, item_cards, item_num)


def _cards(state: dict[str, np.ndarray], tower: str) -> tuple[int, ...]:
    """Rows of each categorical embedding table of a saved tower, in column order."""
    n = sum(1 for k in state if k.startswith(f"{tower}.categorical.") and k.endswith(".weight"))
    return tuple(tensor(state, f"{tower}.categorical.{j}.weight", (None, None), "f").shape[0] for j in range(n))
