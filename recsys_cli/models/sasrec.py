"""SASRec (Kang & McAuley, 2018): causal self-attention over each user's recent
items predicts the next one. Trained with a full softmax over the catalogue at
every position, which works best on small catalogues (MovieLens, the demo
shop); with `negatives` > 0, a sampled softmax over the target and that many
items drawn uniformly (shared by the batch) replaces it, so a catalogue of
100k items costs the same per step as one of a few hundred. The item table is
shared between input and output.

A shop's clickstream is mostly views while the model is judged on carts and
purchases: `target_events` names the event types whose items are the targets
that count (`other_weight` weighs the rest: 1 is plain next-event prediction,
0 learns from the positives alone while views stay inputs); `event_inputs`
adds an embedding of each input's event type (a cart says more than a view);
`dedupe` folds consecutive events of one item into one step.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
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
from recsys_cli.models.state import check_range, tensor
from recsys_cli.models.warm_start import RowMap, WarmStartError, category_means, copy_weights

# Event codes, weakest intent first: 0 is padding or an event of unknown type; folding
# a run of one item (`dedupe`) keeps its strongest code.
EVENT_CODES: tuple[str, ...] = ("", "view", "click", "remove_from_cart", "add_to_cart", "purchase", "rating")
assert set(EVENT_CODES[1:]) == set(EVENT_TYPES)


class SASRecModule(RecModule):
    sequences: torch.Tensor  # (n_users, max_len) buffer: each user's recent items, saved with the weights
    events: torch.Tensor  # (n_users, max_len) buffer of event codes, when event_inputs
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
        event_inputs: bool = False,
        target_weights: tuple[float, ...] | None = None,
    ) -> None:
        super().__init__(n_users, n_items, lr, weight_decay)
        self.negatives = negatives
        # Loss weight of a target by its event code; None: every target weighs 1.
        self.target_weights = target_weights
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
        # Created last, and only when asked for, so a model without them draws the same
        # initial weights and saves the same tensors as before they existed.
        self.event: torch.nn.Embedding | None = None
        if event_inputs:
            self.event = torch.nn.Embedding(len(EVENT_CODES), dim, padding_idx=0)
            torch.nn.init.normal_(self.event.weight, std=dim**-0.5)
            with torch.no_grad():
                self.event.weight[0].zero_()
            self.register_buffer("events", torch.zeros((n_users, max_len), dtype=torch.long))

    def encode(self, items: torch.Tensor, events: torch.Tensor | None = None) -> torch.Tensor:
        """(batch, len) item indices (and event codes) -> (batch, len, dim) states,
        each seeing only its past."""
        positions = torch.arange(items.shape[1], device=items.device)
        x = self.item(items) * self.item.embedding_dim**0.5 + self.position(positions)
        if self.event is not None and events is not None:
            x = x + self.event(events)
        x = self.dropout(x)
        length = items.shape[1]
        causal = torch.zeros(length, length, device=items.device).masked_fill(self.causal[:length, :length], -torch.inf)
        # Padding keys get a large finite penalty, not -inf: with left padding a padded
        # query may see only padded keys, and an all -inf row would make NaNs.
        padding = torch.zeros(items.shape, device=items.device).masked_fill(items == self.pad, -1e9)
        with _without_fast_path():
            h = self.encoder(x, mask=causal, src_key_padding_mask=padding)
        return self.norm(h)

    def loss(self, batch: Any) -> torch.Tensor:
        seq, events = batch if len(batch) == 2 else (batch[0], None)
        inputs, targets = seq[:, :-1], seq[:, 1:]
        states = self.encode(inputs, None if events is None else events[:, :-1])
        if self.target_weights is None or events is None:
            if self.negatives > 0:
                keep = targets != self.pad
                return self._sampled_loss(states[keep], targets[keep], "mean")
            # Kept in its first form (every position's logits) so that unweighted
            # training, MovieLens' included, reproduces its figures to the bit.
            logits = states @ self.item.weight[: self.n_items].T
            targets = targets.masked_fill(targets == self.pad, -100)
            return torch.nn.functional.cross_entropy(
                logits.reshape(-1, self.n_items), targets.reshape(-1), ignore_index=-100
            )
        # Weighted targets: only the positions that carry weight are scored at all.
        weights = torch.as_tensor(self.target_weights, device=seq.device)[events[:, 1:]]
        keep = (targets != self.pad) & (weights > 0)
        h, target, weights = states[keep], targets[keep], weights[keep]
        if self.negatives > 0:
            losses = self._sampled_loss(h, target, "none")
        else:
            losses = torch.nn.functional.cross_entropy(h @ self.item.weight[: self.n_items].T, target, reduction="none")
        return (losses * weights).sum() / weights.sum().clamp_min(1e-9)

    def _sampled_loss(self, h: torch.Tensor, target: torch.Tensor, reduction: str) -> torch.Tensor:
        """Softmax over the target and shared uniform negatives (a negative equal to
        the target is masked); uniform sampling needs no log-q correction."""
        negatives = torch.randint(1, self.n_items, (self.negatives,), device=h.device)
        positive = (h * self.item(target)).sum(-1, keepdim=True)
        negative = (h @ self.item(negatives).T).masked_fill(negatives[None, :] == target[:, None], -torch.inf)
        logits = torch.cat([positive, negative], dim=1)
        return torch.nn.functional.cross_entropy(logits, torch.zeros_like(target), reduction=reduction)

    def score_users(self, users: torch.Tensor) -> torch.Tensor:
        return self.user_vectors(users) @ self.item_vectors().T

    def item_vectors(self) -> torch.Tensor:
        """The shared item table without its padding row: the output layer."""
        return self.item.weight[: self.n_items]

    def user_vectors(self, users: torch.Tensor) -> torch.Tensor:
        """The encoder's state at the last position of each user's stored sequence."""
        events = self.events[users] if self.event is not None else None
        return self.encode(self.sequences[users], events)[:, -1]


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
    # A warm start carries the item table by token and every other weight as it is
    # (models/warm_start.py); `only_new` trains only new items' rows and the last
    # encoder layer with the final norm. Fine-tune epochs at a lower learning rate.
    supports_warm_start = True
    warm_start_epochs = 2
    warm_start_lr_scale = 0.5

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
        target_events: list[str] | None = None,
        other_weight: float = 1.0,
        event_inputs: bool = False,
        dedupe: bool = False,
        **kwargs: Any,
    ) -> None:
        if train_stride is not None and train_stride < 1:
            raise ConfigError(f"model.train_stride must be a positive number of items or null, got {train_stride}")
        unknown = sorted(set(target_events or ()) - set(EVENT_TYPES))
        if unknown:
            raise ConfigError(f"model.target_events: unknown event types {unknown}; known: {', '.join(EVENT_TYPES)}")
        if not 0.0 <= other_weight <= 1.0:
            raise ConfigError(f"model.other_weight must be between 0 and 1, got {other_weight}")
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
            target_events=None if target_events is None else list(target_events),
            other_weight=other_weight,
            event_inputs=event_inputs,
            dedupe=dedupe,
            **kwargs,
        )

    def target_weights(self) -> tuple[float, ...] | None:
        """Loss weight per event code: 1 for `target_events` and for events of unknown
        type, `other_weight` for the rest; None where every target weighs 1."""
        p = self.params
        if p["target_events"] is None or p["other_weight"] == 1.0:
            return None
        named = set(p["target_events"])
        return tuple(1.0 if code in named or not code else float(p["other_weight"]) for code in EVENT_CODES)

    def _uses_events(self) -> bool:
        return bool(self.params["event_inputs"]) or self.target_weights() is not None

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
            p["event_inputs"],
            self.target_weights(),
        )

    def _history_vector(self, user: int, items: np.ndarray, events: list[str]) -> np.ndarray:
        """The user's stored sequence with the new items appended (the oldest dropped
        to keep `max_len`), encoded again: the sequential model's answer to what the
        visitor did a minute ago. A new visitor's sequence is the new items alone."""
        module = self.module
        assert isinstance(module, SASRecModule)
        codes = np.asarray([EVENT_CODES.index(e) if e in EVENT_CODES else 0 for e in events], dtype=np.int64)
        if self.params["dedupe"] and items.size:
            last = int(module.sequences[user, -1])
            keep = np.r_[items[0] != last, items[1:] != items[:-1]]
            items, codes = items[keep], codes[keep]
        stored = module.sequences[user].cpu().numpy()
        held = stored != module.pad
        sequence = np.concatenate([stored[held], items])[-stored.size :]
        row = np.full(stored.size, module.pad, dtype=np.int64)
        row[stored.size - sequence.size :] = sequence
        module.eval()
        with torch.no_grad():
            events_row = None
            if module.event is not None:
                stored_codes = module.events[user].cpu().numpy()
                joined = np.concatenate([stored_codes[held], codes])[-stored.size :]
                padded = np.zeros(stored.size, dtype=np.int64)
                padded[stored.size - joined.size :] = joined
                events_row = torch.as_tensor(padded, device=module.device)[None]
            state = module.encode(torch.as_tensor(row, device=module.device)[None], events_row)[:, -1]
            return state.float().cpu().numpy()[0]

    def build_module(self, data: TrainData) -> SASRecModule:
        module = self._module(data.n_users, data.n_items)
        steps = sequence_steps(data, self.params["dedupe"])
        rows, items, events = steps.windows(self.params["max_len"], None, minimum=1)
        module.sequences[rows] = torch.as_tensor(np.where(items < 0, module.pad, items))
        if module.event is not None:
            module.events[rows] = torch.as_tensor(np.maximum(events, 0))
        return module

    def train_dataset(self, data: TrainData) -> TensorDataset:
        """Rows of max_len + 1 steps (inputs and shifted targets): each user's latest
        ones, or with `train_stride` windows over the whole stored history; with
        event types in play, their codes ride along. Rows whose targets all weigh 0
        (views only, where only positives count) are left out: nothing to learn."""
        length, stride = self.params["max_len"] + 1, self.params["train_stride"]
        _, items, events = sequence_steps(data, self.params["dedupe"]).windows(length, stride, minimum=2)
        weights = self.target_weights()
        if weights is not None:
            useful = (np.asarray(weights)[np.maximum(events[:, 1:], 0)] * (items[:, 1:] >= 0)).sum(axis=1) > 0
            items, events = items[useful], events[useful]
        tensors = [torch.as_tensor(np.where(items < 0, data.n_items, items))]
        if self._uses_events():
            tensors.append(torch.as_tensor(np.maximum(events, 0)))
        return TensorDataset(*tensors)

    def warm_module(self, module: RecModule, previous: Recommender, data: TrainData) -> dict[str, np.ndarray]:
        """The previous model's weights in `module` (built for `data`): the item table's
        rows by token, a new product starting at its category's mean plus the module's
        random start; positions, encoder and norms as they were. The sequences are the
        new data's. Returns what `only_new` keeps fixed: carried item rows and every
        weight but the last encoder layer's and the final norm's."""
        assert isinstance(module, SASRecModule) and isinstance(previous, SASRec)
        assert isinstance(previous.module, SASRecModule) and previous.items is not None
        old, state = previous.module.state_dict(), module.state_dict()
        copy_weights(old, state, ("item.weight", "sequences", "events"), "dim, heads, layers, max_len or event_inputs")
        old_items = old["item.weight"][: previous.module.n_items].cpu().numpy()
        if old_items.shape[1] != module.item.embedding_dim:
            raise WarmStartError(
                f"model.dim={module.item.embedding_dim} but the previous SASRec has {old_items.shape[1]}: "
                "a warm start keeps the embedding size; fit from scratch to change it"
            )
        items = RowMap.between(previous.items, data.items)
        rows = items.carry(old_items, state["item.weight"][: module.n_items].cpu().numpy())
        rows[items.new] += category_means(data, rows, items.kept)[items.new]
        table = np.vstack([rows, np.zeros((1, rows.shape[1]), np.float32)])  # the padding row stays zero
        state["item.weight"] = torch.as_tensor(table)
        module.load_state_dict(state)
        last = f"encoder.layers.{len(module.encoder.layers) - 1}."
        frozen = {"item.weight": np.flatnonzero(items.kept)}
        for name, param in module.named_parameters():
            if name != "item.weight" and not name.startswith(last) and not name.startswith("norm."):
                frozen[name] = np.arange(param.shape[0])
        return frozen

    def module_from_state(self, state: dict[str, np.ndarray]) -> SASRecModule:
        """Sized by the vocabularies; each stored sequence may hold items and the padding
        row only, each stored event code a known event type."""
        assert self.users is not None and self.items is not None
        n_users, n_items = len(self.users), len(self.items)
        check_range(state, "sequences", (n_users, self.params["max_len"]), 0, n_items + 1)
        if self.params["event_inputs"]:
            check_range(state, "events", (n_users, self.params["max_len"]), 0, len(EVENT_CODES))
        tensor(state, "item.weight", (n_items + 1, None), "f")
        return self._module(n_users, n_items)


@dataclass(frozen=True)
class Steps:
    """Every user's stored sequence as flat arrays grouped by user index (ascending),
    oldest first: the steps a sequential model reads."""

    users: np.ndarray  # (n,) user index
    items: np.ndarray  # (n,) item index (0: an item the vocabulary does not hold)
    events: np.ndarray  # (n,) event code (`EVENT_CODES`; 0 where the type is unknown)

    def starts(self) -> np.ndarray:
        """(n,) flat position of the first step of each step's user."""
        first = np.r_[True, self.users[1:] != self.users[:-1]] if self.users.size else np.zeros(0, bool)
        return np.maximum.accumulate(np.where(first, np.arange(self.users.size), 0))

    def windows(self, length: int, stride: int | None, minimum: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(user of each row, items, event codes), rows of `length` steps right-aligned and
        left-padded with -1: the first window of a user ends at the latest step and, with
        a `stride`, each next one `stride` steps earlier (ends stay `minimum` steps in).
        Without a stride, each user's latest window only. Users with fewer than `minimum`
        steps get none. In user-index order, latest window first (`TrainData.sequence_windows`'
        order, so unweighted training reads the same rows as it always did)."""
        lengths = np.bincount(self.users, minlength=int(self.users.max(initial=-1)) + 1)
        starts = np.cumsum(lengths) - lengths
        if stride is None:
            count = (lengths >= minimum).astype(np.int64)
        else:  # ceil((n - minimum + 1) / stride) windows: ends stay >= minimum
            count = np.maximum(0, -(-(lengths - minimum + 1) // stride))
        user = np.repeat(np.arange(lengths.size), count)
        j = np.arange(count.sum()) - np.repeat(np.cumsum(count) - count, count)
        end = lengths[user] - j * (stride or 0)  # exclusive, within the user's sequence
        offset = end[:, None] - length + np.arange(length)[None, :]
        valid = offset >= 0
        at = np.where(valid, starts[user][:, None] + offset, 0)
        items = np.where(valid, self.items[at], -1) if self.items.size else np.full(offset.shape, -1)
        events = np.where(valid, self.events[at], -1) if self.events.size else np.full(offset.shape, -1)
        return user, items.astype(np.int64), events.astype(np.int64)


def sequence_steps(data: TrainData, dedupe: bool = False) -> Steps:
    """The feature set's sequences in index space; with `dedupe`, each run of
    consecutive events on one item becomes one step with the run's strongest event
    (view, view, cart of one item: one cart). Sequences without event types (data
    built in memory) have code 0 throughout."""
    seqs = data.sequences
    if seqs is None or seqs.height == 0:
        empty = np.zeros(0, np.int64)
        return Steps(empty, empty, empty)
    typed = "event_types" in seqs.columns
    lists = ["items", "event_types"] if typed else ["items"]
    flat = seqs.select(Col.USER, *lists).explode(lists).drop_nulls("items")
    codes = (
        flat["event_types"].cast(pl.String).replace_strict(list(EVENT_CODES), list(range(len(EVENT_CODES))), default=0)
        if typed
        else pl.repeat(0, flat.height, eager=True)
    )
    users, items = data.user_index(flat[Col.USER]), data.item_index(flat["items"])
    events = codes.to_numpy().astype(np.int64)
    # Sequences come sorted by user id, not index: a stable sort groups them by index
    # and keeps each user's events oldest first.
    order = np.argsort(users, kind="stable")
    users, items, events = users[order], items[order], events[order]
    if dedupe and users.size:
        last = np.r_[(users[1:] != users[:-1]) | (items[1:] != items[:-1]), True]  # a run's last step
        run_starts = np.r_[0, np.flatnonzero(last)[:-1] + 1]
        events = np.maximum.reduceat(events, run_starts)
        users, items = users[last], items[last]
    return Steps(users, items, events)
