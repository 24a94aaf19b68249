"""What a model is trained on: a prepared feature set turned into index space.

Users and items are indexed by the feature set's vocabularies (index 0 is the
out-of-vocabulary bucket), so a model trained here maps unseen ids at serving
time to a known row: the cold-start fallback.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, overload

import numpy as np
import polars as pl
import scipy.sparse as sp

from recsys_cli.data.schema import Col
from recsys_cli.errors import SplitError
from recsys_cli.features.interactions import SEEN
from recsys_cli.features.vocab import Vocabulary


@dataclass
class TrainData:
    users: Vocabulary
    items: Vocabulary
    matrix: sp.csr_matrix  # (n_users, n_items) interaction weights, row/column 0 empty
    user_features: pl.DataFrame | None = None
    item_features: pl.DataFrame | None = None
    sequences: pl.DataFrame | None = None
    # Every vocabulary of the feature set (user and item ids, categories, brands,
    # demographics), so models encode side features the same way as the ids.
    vocabularies: dict[str, Vocabulary] = field(default_factory=dict)
    # Earlier cutoffs with the positives that followed them (features.ranker_windows):
    # what a second-stage ranker learns from. Indexed with this set's vocabularies.
    windows: Sequence[LabelledWindow] = field(default_factory=list)
    # (n_users, n_items) 1 where the target counts the item as already seen by the
    # user (the feature set's `seen` column): never recommended, never ground truth.
    # None: every interaction counts (`interacted`), for data built in memory.
    seen: sp.csr_matrix | None = None
    # What models compute from this data alone and would otherwise compute again,
    # keyed by what it depends on: a ranker fits two item-kNN generators (whole
    # history and last items) on every labelled window, with the same neighbours.
    # The data does not change once built, so nothing here goes stale.
    derived: dict[tuple[Any, ...], Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def n_users(self) -> int:
        return len(self.users)

    @property
    def n_items(self) -> int:
        return len(self.items)

    def interacted(self) -> sp.csr_matrix:
        """(n_users, n_items) 1 where the user has any weighted interaction with the item."""
        return (self.matrix > 0).astype(np.float32).tocsr()

    def seen_matrix(self) -> sp.csr_matrix:
        """What a model excludes from a user's recommendations: the target's seen items."""
        return self.interacted() if self.seen is None else self.seen

    @classmethod
    def from_features(cls, folder: Path | str) -> TrainData:
        """Load `interactions.parquet`, `vocab.json` and the aggregates of one feature set."""
        folder = Path(folder)
        vocab = {k: Vocabulary.from_json(v) for k, v in json.loads((folder / "vocab.json").read_text()).items()}
        users, items = vocab[Col.USER], vocab[Col.ITEM]
        data = cls._tables(folder, users, items, vocab)
        ranker = folder / "ranker"
        if ranker.is_dir():
            subs = sorted((p for p in ranker.iterdir() if p.is_dir()), key=lambda p: int(p.name))
            data.windows = StoredWindows(tuple(subs), users, items, vocab)
        return data

    @classmethod
    def _tables(cls, folder: Path, users: Vocabulary, items: Vocabulary, vocab: dict[str, Vocabulary]) -> TrainData:
        path = folder / "interactions.parquet"
        inter = pl.read_parquet(path)
        if SEEN not in inter.columns:
            raise SplitError(
                f"{path}: written before feature sets recorded which items the target counts as seen; "
                "rerun `recsys features` with the same overrides"
            )
        return cls(
            users,
            items,
            interaction_matrix(inter, users, items),
            _maybe(folder / "user_features.parquet"),
            _maybe(folder / "item_features.parquet"),
            _maybe(folder / "sequences.parquet"),
            vocab,
            seen=seen_matrix(inter, users, items),
        )

    def sequence_matrix(self, max_len: int) -> np.ndarray:
        """(n_users, max_len) item indices of each user's recent items, right-aligned,
        left-padded with -1; users without a sequence are all padding."""
        out = np.full((self.n_users, max_len), -1, dtype=np.int64)
        if self.sequences is None or self.sequences.height == 0:
            return out
        seqs = self.sequences.select(Col.USER, pl.col("items").list.tail(max_len))
        lengths = seqs["items"].list.len().to_numpy().astype(np.int64)
        flat = self.item_index(seqs["items"].explode())
        rows = np.repeat(self.user_index(seqs[Col.USER]), lengths)
        ends = np.cumsum(lengths)
        position = np.arange(flat.size) - np.repeat(ends - lengths, lengths) + np.repeat(max_len - lengths, lengths)
        out[rows, position] = flat
        return out

    def sequence_windows(self, length: int, stride: int) -> np.ndarray:
        """(n_windows, length) item indices: windows over every user's whole stored
        sequence (features.max_len items), the first ending at the latest item and
        each next one `stride` items earlier, right-aligned and left-padded with -1.
        Windows with fewer than two items (nothing to predict) are left out.

        A sequential model trained on each user's last `length` items alone sees only
        the tail of long histories; windows give it every transition while attention
        stays `length` long."""
        if self.sequences is None or self.sequences.height == 0:
            return np.full((0, length), -1, dtype=np.int64)
        lengths = self.sequences["items"].list.len().to_numpy().astype(np.int64)
        flat = self.item_index(self.sequences["items"].explode().drop_nulls())
        starts = np.cumsum(lengths) - lengths
        # Window j of a user ends j * stride items before the user's last item.
        count = np.maximum(0, -(-(lengths - 1) // stride))  # ceil((n - 1) / stride): ends stay >= 2
        user = np.repeat(np.arange(lengths.size), count)
        j = np.arange(count.sum()) - np.repeat(np.cumsum(count) - count, count)
        end = lengths[user] - j * stride  # exclusive, within the user's sequence
        offset = end[:, None] - length + np.arange(length)[None, :]
        valid = offset >= 0
        gathered = flat[np.where(valid, starts[user][:, None] + offset, 0)] if flat.size else offset
        # In user-index order, latest window first: with histories no longer than
        # `length` these are exactly the rows of `sequence_matrix(length)` that have
        # something to predict, in the same order, so results do not move.
        order = np.argsort(self.user_index(self.sequences[Col.USER])[user], kind="stable")
        return np.where(valid, gathered, -1).astype(np.int64)[order]

    def user_index(self, ids: pl.Series) -> np.ndarray:
        return pl.DataFrame({"u": ids}).select(self.users.encode("u"))["u"].to_numpy().astype(np.int64)

    def item_index(self, ids: pl.Series) -> np.ndarray:
        return pl.DataFrame({"i": ids}).select(self.items.encode("i"))["i"].to_numpy().astype(np.int64)


class StoredWindows(Sequence["LabelledWindow"]):
    """A feature set's labelled windows, each read from its folder when asked for and
    not kept: a ranker works through them one at a time, and a shop's twelve windows
    held at once were a third of its fit's peak memory. The folder's tables are the
    ones `recsys train` verified (the feature set's manifest) before any were read."""

    def __init__(
        self, folders: tuple[Path, ...], users: Vocabulary, items: Vocabulary, vocab: dict[str, Vocabulary]
    ) -> None:
        self.folders, self.users, self.items, self.vocab = folders, users, items, vocab

    def __len__(self) -> int:
        return len(self.folders)

    @overload
    def __getitem__(self, index: int) -> LabelledWindow: ...
    @overload
    def __getitem__(self, index: slice) -> list[LabelledWindow]: ...
    def __getitem__(self, index: int | slice) -> LabelledWindow | list[LabelledWindow]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        folder = self.folders[index]
        window = TrainData._tables(folder, self.users, self.items, self.vocab)
        return LabelledWindow(window, pl.read_parquet(folder / "labels.parquet"))


@dataclass
class LabelledWindow:
    data: TrainData  # features as of the window's cutoff
    labels: pl.DataFrame  # (user_id, item_id) target positives in the days after it

    def label_matrix(self) -> sp.csr_matrix:
        """(n_users, n_items) 1 where the user engaged with the item in the window."""
        labels = self.labels.with_columns(pl.lit(1.0).alias("weight"))
        matrix = interaction_matrix(labels, self.data.users, self.data.items)
        matrix.data[:] = 1.0
        return matrix


def interaction_matrix(inter: pl.DataFrame, users: Vocabulary, items: Vocabulary) -> sp.csr_matrix:
    """Weights of the pairs that carry any; seen pairs of weight 0 stay out."""
    coded = inter.select(users.encode(Col.USER).alias("u"), items.encode(Col.ITEM).alias("i"), pl.col("weight"))
    coded = coded.filter((pl.col("u") > 0) & (pl.col("i") > 0) & (pl.col("weight") > 0))
    matrix = sp.csr_matrix(
        (coded["weight"].to_numpy().astype(np.float32), (coded["u"].to_numpy(), coded["i"].to_numpy())),
        shape=(len(users), len(items)),
    )
    matrix.sum_duplicates()
    return matrix


def seen_matrix(inter: pl.DataFrame, users: Vocabulary, items: Vocabulary) -> sp.csr_matrix:
    """1 for the pairs whose `seen` column is true, whatever their weight."""
    pairs = inter.filter(pl.col(SEEN)).with_columns(pl.lit(1.0).alias("weight"))
    matrix = interaction_matrix(pairs, users, items)
    matrix.data[:] = 1.0
    return matrix


def _maybe(path: Path) -> pl.DataFrame | None:
    return pl.read_parquet(path) if path.exists() else None
