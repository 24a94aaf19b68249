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

On a shop's clickstream most visitors come once: an id learnt from a handful of
views says little. With `history` > 0 the user tower also reads the user's
latest `history` events (the item tower's vectors of their items, pooled with
learnt weights per event type and recency), and training examples become the
events themselves, each with the events before it as its history: the model
learns what follows a history rather than which ids met. `target_events` then
says which events are the targets that count (carts and purchases in a shop)
and `other_weight` how much the others (views) count.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import polars as pl
import torch
from torch.utils.data import TensorDataset

from recsys_cli.data.schema import EVENT_TYPES, Col
from recsys_cli.errors import ConfigError
from recsys_cli.models.base import Recommender
from recsys_cli.models.data import TrainData
from recsys_cli.models.lightning import NeuralRecommender, RecModule
from recsys_cli.models.sasrec import EVENT_CODES, sequence_steps
from recsys_cli.models.side_features import SideFeatures, encode_side
from recsys_cli.models.state import check_codes, check_range, tensor
from recsys_cli.models.warm_start import RowMap, WarmStartError, category_means, copy_weights

ITEM_BUCKETS = {"price": 10, "age_days": 8}


class Tower(torch.nn.Module):
    """id embedding + one embedding per categorical + numeric features -> MLP -> unit vector."""

    def __init__(
        self, n_ids: int, cardinalities: tuple[int, ...], n_numeric: int, dim: int, dropout: float, extra: int = 0
    ) -> None:
        """`extra` > 0: a vector of that width joins the inputs (the pooled history) and
        replaces the id: an id learnt from one visit's events memorises them, and a
        visitor the model never trained on would be scored by an untrained row."""
        super().__init__()
        self.id = torch.nn.Embedding(n_ids, dim) if not extra else None
        self.categorical = torch.nn.ModuleList(torch.nn.Embedding(c, dim) for c in cardinalities)
        width = dim * (len(cardinalities) + (0 if extra else 1)) + n_numeric + extra
        self.mlp = torch.nn.Sequential(
            torch.nn.Linear(width, 2 * dim), torch.nn.ReLU(), torch.nn.Dropout(dropout), torch.nn.Linear(2 * dim, dim)
        )
        if self.id is not None:
            torch.nn.init.normal_(self.id.weight, std=0.05)

    def forward(
        self, ids: torch.Tensor, categorical: torch.Tensor, numeric: torch.Tensor, extra: torch.Tensor | None = None
    ) -> torch.Tensor:
        parts = [*(emb(categorical[:, j]) for j, emb in enumerate(self.categorical)), numeric]
        if self.id is not None:
            parts.insert(0, self.id(ids))
        if extra is not None:
            parts.append(extra)
        return torch.nn.functional.normalize(self.mlp(torch.cat(parts, dim=-1)), dim=-1)


class TwoTowerModule(RecModule):
    user_cat: torch.Tensor  # side features, saved with the weights so a loaded model scores alone
    user_num: torch.Tensor
    item_cat: torch.Tensor
    item_num: torch.Tensor
    log_q: torch.Tensor  # log sampling probability of each item as a batch positive
    history_items: torch.Tensor  # (n_users, history) latest items, n_items = padding (with `history`)
    history_events: torch.Tensor  # (n_users, history) their event codes
    step_items: torch.Tensor  # training only: every stored event's item, flat, grouped by user
    step_events: torch.Tensor
    step_start: torch.Tensor  # flat position of the first event of each event's user

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
        history: int = 0,
        negatives: int = 0,
    ) -> None:
        super().__init__(n_users, n_items, lr, weight_decay)
        self.temperature, self.hard_negatives, self.hard_pool = temperature, hard_negatives, hard_pool
        self.history, self.negatives = history, negatives
        self.user_tower = Tower(n_users, tuple(user_cards), n_user_numeric, dim, dropout, dim if history else 0)
        self.item_tower = Tower(n_items, tuple(item_cards), n_item_numeric, dim, dropout)
        self.register_buffer("user_cat", torch.zeros(n_users, len(user_cards), dtype=torch.long))
        self.register_buffer("user_num", torch.zeros(n_users, n_user_numeric))
        self.register_buffer("item_cat", torch.zeros(n_items, len(item_cards), dtype=torch.long))
        self.register_buffer("item_num", torch.zeros(n_items, n_item_numeric))
        self.register_buffer("log_q", torch.zeros(n_items))
        if history:  # only then, so a model without history saves the same tensors as ever
            # How much each past event counts in the pooled history, by type and by recency.
            self.event_logit = torch.nn.Parameter(torch.zeros(len(EVENT_CODES)))
            self.recency_logit = torch.nn.Parameter(torch.zeros(history))
            self.register_buffer("history_items", torch.full((n_users, history), n_items, dtype=torch.long))
            self.register_buffer("history_events", torch.zeros((n_users, history), dtype=torch.long))
            # Training only (not saved): every stored event, flat, and where its user's begin.
            for name in ("step_items", "step_events", "step_start"):
                self.register_buffer(name, torch.zeros(0, dtype=torch.long), persistent=False)

    def pooled(self, items: torch.Tensor, events: torch.Tensor) -> torch.Tensor:
        """(batch, history) items (n_items = padding), oldest first -> (batch, dim):
        the item tower's vectors averaged with softmax weights per event type and
        recency; zeros for an empty history."""
        valid = items < self.n_items
        vectors = self.items(items.clamp_max(self.n_items - 1).reshape(-1)).reshape(*items.shape, -1)
        logits = self.event_logit[events] + self.recency_logit[None, :]
        weights = torch.softmax(logits.masked_fill(~valid, -torch.inf), dim=1).nan_to_num(0.0)
        return (weights[..., None] * vectors).sum(1)

    def users(self, index: torch.Tensor, history: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
        extra = None
        if self.history:
            items, events = history if history is not None else (self.history_items[index], self.history_events[index])
            extra = self.pooled(items, events)
        return self.user_tower(index, self.user_cat[index], self.user_num[index], extra)

    def items(self, index: torch.Tensor) -> torch.Tensor:
        return self.item_tower(index, self.item_cat[index], self.item_num[index])

    def loss(self, batch: Any) -> torch.Tensor:
        if len(batch) == 2:  # (user, item) pairs of the interaction matrix
            users, items = batch
            u, weights = self.users(users), None
        else:  # (user, item, flat position of the event, weight): events with their histories
            users, items, position, weights = batch
            u = self.users(users, self._histories(position))
        v = self.items(items)
        logits = (u @ v.T) / self.temperature - self.log_q[items][None, :]
        # The same item twice in a batch is not a negative for its other user.
        clash = (items[None, :] == items[:, None]) & ~torch.eye(items.numel(), dtype=torch.bool, device=items.device)
        logits = logits.masked_fill(clash, -torch.inf)
        if self.negatives > 0:
            logits = torch.cat([logits, self._uniform_logits(u, items)], dim=1)
        if self.hard_negatives > 0:
            logits = torch.cat([logits, self._hard_logits(u, items)], dim=1)
        target = torch.arange(items.numel(), device=items.device)
        if weights is None:
            return torch.nn.functional.cross_entropy(logits, target)
        losses = torch.nn.functional.cross_entropy(logits, target, reduction="none")
        return (losses * weights).sum() / weights.sum().clamp_min(1e-9)

    def _histories(self, position: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The `history` events before each flat position, within its user, left-padded."""
        items, events, start = self.step_items, self.step_events, self.step_start
        at = position[:, None] - self.history + torch.arange(self.history, device=position.device)[None, :]
        valid = at >= start[position][:, None]
        at = at.clamp_min(0)
        return items[at].masked_fill(~valid, self.n_items), events[at].masked_fill(~valid, 0)

    def _uniform_logits(self, u: torch.Tensor, positives: torch.Tensor) -> torch.Tensor:
        """Logits of items drawn uniformly from the catalogue (shared by the batch):
        in-batch negatives are only items that are someone's target, so items that
        never are (most of a shop's catalogue, when only carts and purchases count)
        would never be pushed down. Corrected by log(1 / n_items), their sampling
        probability, as the in-batch ones are by log q."""
        pool = torch.randint(1, self.n_items, (self.negatives,), device=u.device)
        logits = (u @ self.items(pool).T) / self.temperature + float(np.log(self.n_items - 1))
        return logits.masked_fill(pool[None, :] == positives[:, None], -torch.inf)

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
        return self.user_vectors(users) @ self.item_vectors().T

    def item_vectors(self) -> torch.Tensor:
        """Every item through the item tower: unit vectors, so the inner product is the cosine."""
        return self.items(torch.arange(self.n_items, device=self.log_q.device))

    def user_vectors(self, users: torch.Tensor) -> torch.Tensor:
        return self.users(users)


class TwoTower(NeuralRecommender):
    # A warm start carries id rows by token, categorical rows by value (matched through
    # the users and items both windows share, since the model keeps codes, not their
    # names) and the towers' networks as they were; `only_new` trains new rows and the
    # towers' last layers. Fine-tune epochs at a lower learning rate.
    supports_warm_start = True
    warm_start_epochs = 2
    warm_start_lr_scale = 0.5

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
        history: int = 0,
        target_events: list[str] | None = None,
        other_weight: float = 1.0,
        dedupe: bool = False,
        negatives: int = 0,
        **kwargs: Any,
    ) -> None:
        unknown = sorted(set(target_events or ()) - set(EVENT_TYPES))
        if unknown:
            raise ConfigError(f"model.target_events: unknown event types {unknown}; known: {', '.join(EVENT_TYPES)}")
        if not 0.0 <= other_weight <= 1.0:
            raise ConfigError(f"model.other_weight must be between 0 and 1, got {other_weight}")
        if history < 0:
            raise ConfigError(f"model.history must be a number of events (0: none), got {history}")
        super().__init__(
            dim=dim,
            dropout=dropout,
            temperature=temperature,
            hard_negatives=hard_negatives,
            hard_pool=hard_pool,
            side_features=side_features,
            lr=lr,
            weight_decay=weight_decay,
            history=history,
            target_events=None if target_events is None else list(target_events),
            other_weight=other_weight,
            dedupe=dedupe,
            negatives=negatives,
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
            p["history"],
            p["negatives"],
        )

    def _from_events(self) -> bool:
        """Trained on the stored events (with their histories) rather than on the
        interaction matrix's pairs: with a history, or with targets by event type."""
        return bool(self.params["history"]) or self.params["target_events"] is not None

    def _event_weights(self) -> np.ndarray:
        """Loss weight per event code: 1 for `target_events` (every type without
        them) and for events of unknown type, `other_weight` for the rest."""
        named = self.params["target_events"]
        other = float(self.params["other_weight"])
        return np.array([1.0 if named is None or not c or c in named else other for c in EVENT_CODES])

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
        if self._from_events():
            steps = sequence_steps(data, self.params["dedupe"])
            weights = self._event_weights()[steps.events]
            counts = np.bincount(steps.items[weights > 0], weights=weights[weights > 0], minlength=data.n_items)
        else:
            counts = np.asarray((data.matrix > 0).sum(axis=0)).ravel().astype(np.float64)
        module.log_q.copy_(torch.as_tensor(np.log((counts + 1.0) / (counts.sum() + counts.size)), dtype=torch.float32))
        if module.history:
            steps = sequence_steps(data, self.params["dedupe"])
            rows, latest, events = steps.windows(module.history, None, minimum=1)
            module.history_items[rows] = torch.as_tensor(np.where(latest < 0, data.n_items, latest))
            module.history_events[rows] = torch.as_tensor(np.maximum(events, 0))
            module.step_items = torch.as_tensor(steps.items)
            module.step_events = torch.as_tensor(steps.events)
            module.step_start = torch.as_tensor(steps.starts())
        return module

    def train_dataset(self, data: TrainData) -> TensorDataset:
        """The interaction matrix's (user, item) pairs; or, trained from events,
        (user, item, flat position, weight) for every stored event that weighs
        anything: its history is what came before it (`TwoTowerModule._histories`)."""
        if not self._from_events():
            coo = data.matrix.tocoo()
            return TensorDataset(torch.as_tensor(coo.row, dtype=torch.long), torch.as_tensor(coo.col, dtype=torch.long))
        steps = sequence_steps(data, self.params["dedupe"])
        weights = self._event_weights()[steps.events]
        keep = np.flatnonzero((weights > 0) & (steps.items > 0))
        return TensorDataset(
            torch.as_tensor(steps.users[keep]),
            torch.as_tensor(steps.items[keep]),
            torch.as_tensor(keep, dtype=torch.long),
            torch.as_tensor(weights[keep], dtype=torch.float32),
        )

    def warm_module(self, module: RecModule, previous: Recommender, data: TrainData) -> dict[str, np.ndarray]:
        """The previous model's weights in `module` (built for `data`). Id rows follow
        their tokens (a new product's starts at its category's carried items' mean, on
        top of its random start). A categorical table's row for a value follows the
        previous code that the shared users or items held for that value (the majority,
        should some have moved), so a category, brand or region keeps its row, and a
        value never seen before starts fresh. The networks are copied as they are, so
        the side features must be the same columns. Returns what `only_new` keeps
        fixed: carried rows, and each tower's first layer."""
        assert isinstance(module, TwoTowerModule) and isinstance(previous, TwoTower)
        old = previous.module
        assert isinstance(old, TwoTowerModule) and previous.users is not None and previous.items is not None
        for key in ("dim", "history"):
            if previous.params[key] != self.params[key]:
                raise WarmStartError(
                    f"model.{key}={self.params[key]} but the previous TwoTower has {previous.params[key]}: a warm "
                    "start keeps the architecture; fit from scratch to change it"
                )
        old_state, state = old.state_dict(), module.state_dict()
        users, items = RowMap.between(previous.users, data.users), RowMap.between(previous.items, data.items)
        frozen: dict[str, np.ndarray] = {}
        for tower, rows, side in (("user_tower", users, "user"), ("item_tower", items, "item")):
            frozen |= _carry_tower(tower, side, rows, old_state, state, data)
        handled = {*frozen, "user_cat", "user_num", "item_cat", "item_num", "log_q", "history_items", "history_events"}
        copy_weights(old_state, state, handled, "dim or history")
        module.load_state_dict(state)
        for name, param in module.named_parameters():
            if name.startswith(("user_tower.mlp.0.", "item_tower.mlp.0.")):
                frozen[name] = np.arange(param.shape[0])
        return frozen

    def module_from_state(self, state: dict[str, np.ndarray]) -> TwoTowerModule:
        """Sized by the vocabularies; the side-feature codes must index their embedding
        tables, the stored histories the items (or padding) and the event codes."""
        assert self.users is not None and self.items is not None
        n_users, n_items = len(self.users), len(self.items)
        user_cards, item_cards = _cards(state, "user_tower"), _cards(state, "item_tower")
        check_codes(state, "user_cat", n_users, user_cards)
        check_codes(state, "item_cat", n_items, item_cards)
        user_num = tensor(state, "user_num", (n_users, None), "f").shape[1]
        item_num = tensor(state, "item_num", (n_items, None), "f").shape[1]
        if self.params["history"]:
            check_range(state, "history_items", (n_users, self.params["history"]), 0, n_items + 1)
            check_range(state, "history_events", (n_users, self.params["history"]), 0, len(EVENT_CODES))
        return self._module(n_users, n_items, user_cards, user_num, item_cards, item_num)


def _carry_tower(
    tower: str,
    side: str,
    rows: RowMap,
    old_state: dict[str, torch.Tensor],
    state: dict[str, torch.Tensor],
    data: TrainData,
) -> dict[str, np.ndarray]:
    """Fill one tower's id and categorical tables in `state` from `old_state`
    (TwoTower.warm_module); returns the rows carried, per table."""
    old_codes, new_codes = old_state[f"{side}_cat"], state[f"{side}_cat"]
    widths = [(old_state[f"{side}_{k}"].shape[1], state[f"{side}_{k}"].shape[1]) for k in ("cat", "num")]
    if any(a != b for a, b in widths):
        raise WarmStartError(
            f"TwoTower: the {side} side features differ from the previous model's (other columns); "
            "a warm start keeps the network's inputs: fit from scratch"
        )
    carried: dict[str, np.ndarray] = {}
    key = f"{tower}.id.weight"
    if key in state:
        table = rows.carry(old_state[key].cpu().numpy(), state[key].cpu().numpy())
        if side == "item":
            table[rows.new] += category_means(data, table, rows.kept)[rows.new]
        state[key], carried[key] = torch.as_tensor(table), np.flatnonzero(rows.kept)
    kept = np.flatnonzero(rows.kept[1:]) + 1
    for j in range(new_codes.shape[1]):
        key = f"{tower}.categorical.{j}.weight"
        before = old_codes[rows.source[kept], j].cpu().numpy()
        mapping = _value_rows(before, new_codes[kept, j].cpu().numpy(), state[key].shape[0])
        table = state[key].cpu().numpy().copy()
        have = np.flatnonzero(mapping >= 0)
        table[have] = old_state[key].cpu().numpy()[mapping[have]]
        state[key], carried[key] = torch.as_tensor(table), have
    return carried


def _value_rows(old_codes: np.ndarray, new_codes: np.ndarray, n_new: int) -> np.ndarray:
    """(n_new,) for each code of a categorical column now, its code in the previous
    model: the one most of the shared rows held (ties: the lowest); -1 where no
    shared row holds the value (a value new since), 0 for the unknown code."""
    pairs = pl.DataFrame({"new": new_codes.astype(np.int64), "old": old_codes.astype(np.int64)})
    best = (
        pairs.filter((pl.col("new") > 0) & (pl.col("old") > 0))
        .group_by("new", "old")
        .len()
        .sort(["new", "len", "old"], descending=[False, True, False])
        .unique("new", keep="first", maintain_order=True)
    )
    out = np.full(n_new, -1, dtype=np.int64)
    out[best["new"].to_numpy()] = best["old"].to_numpy()
    out[0] = 0
    return out


def _cards(state: dict[str, np.ndarray], tower: str) -> tuple[int, ...]:
    """Rows of each categorical embedding table of a saved tower, in column order."""
    n = sum(1 for k in state if k.startswith(f"{tower}.categorical.") and k.endswith(".weight"))
    return tuple(tensor(state, f"{tower}.categorical.{j}.weight", (None, None), "f").shape[0] for j in range(n))
