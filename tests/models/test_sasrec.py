"""SASRec: the sampled softmax learns the same planted sequences as the full one, and
windowed training reads every transition of long histories."""

from __future__ import annotations

import polars as pl

from recsys_cli.data.schema import Col
from recsys_cli.features.vocab import Vocabulary
from recsys_cli.models.data import TrainData, interaction_matrix
from tests.models.conftest import user_rows
from tests.models.test_contract import SMALL, make


def test_sampled_softmax_finds_the_planted_signal(board: tuple[TrainData, dict[str, str]]) -> None:
    data, held_out = board
    model = make("sasrec", *SMALL["sasrec"], "model.negatives=4").fit(data)
    top, _ = model.recommend(user_rows(data, list(held_out)), k=1)
    found = [data.items.tokens[i] == item for i, item in zip(top[:, 0], held_out.values(), strict=True)]
    assert sum(found) >= 0.9 * len(found)


def _shop(histories: dict[str, list[str]]) -> TrainData:
    items = sorted({i for h in histories.values() for i in h})
    inter = pl.DataFrame(
        [(u, i, 1.0) for u, h in histories.items() for i in h], schema=[Col.USER, Col.ITEM, "weight"], orient="row"
    )
    users, vocab = Vocabulary.fit(inter[Col.USER]), Vocabulary.fit(pl.Series(items))
    sequences = pl.DataFrame({Col.USER: list(histories), "items": list(histories.values())})
    return TrainData(users, vocab, interaction_matrix(inter, users, vocab), sequences=sequences)


def test_windows_cover_every_transition_of_long_histories() -> None:
    data = _shop({"long": [f"i{n}" for n in range(7)], "short": ["i0", "i1"], "single": ["i2"]})
    windows = data.sequence_windows(length=3, stride=2)
    decoded = [[data.items.tokens[i] if i >= 0 else None for i in row] for row in windows]
    assert decoded == [
        ["i4", "i5", "i6"],  # the latest window ends at the latest item
        ["i2", "i3", "i4"],
        ["i0", "i1", "i2"],  # every transition of the long history is now a target once
        [None, "i0", "i1"],  # the two-item user, left-padded
    ]  # the one-item user has nothing to predict


def test_windowed_training_reads_the_whole_history(board: tuple[TrainData, dict[str, str]]) -> None:
    data, _ = board
    latest = make("sasrec", *SMALL["sasrec"], "model.max_len=2").train_dataset(data).tensors[0]
    windowed = make("sasrec", *SMALL["sasrec"], "model.max_len=2", "model.train_stride=2").train_dataset(data)
    rows = windowed.tensors[0]
    assert rows.shape[1] == latest.shape[1] == 3
    # The 40 board users have 4 items each: windows end at the 4th (full) and at the
    # 2nd (one padding slot). The extra user's 5 items give two full windows.
    assert rows.shape[0] == 2 * latest.shape[0] == 82
    assert int((rows == data.n_items).sum()) == 40


def test_windows_over_short_histories_are_the_latest_items_rows(board: tuple[TrainData, dict[str, str]]) -> None:
    data, _ = board
    latest = data.sequence_matrix(6)  # every board history fits one window
    assert (data.sequence_windows(6, stride=5) == latest[(latest >= 0).sum(axis=1) >= 2]).all()
