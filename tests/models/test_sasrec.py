"""SASRec's sampled softmax learns the same planted sequences as the full one."""

from __future__ import annotations

from recsys_cli.models.data import TrainData
from tests.models.conftest import user_rows
from tests.models.test_contract import SMALL, make


def test_sampled_softmax_finds_the_planted_signal(board: tuple[TrainData, dict[str, str]]) -> None:
    data, held_out = board
    model = make("sasrec", *SMALL["sasrec"], "model.negatives=4").fit(data)
    top, _ = model.recommend(user_rows(data, list(held_out)), k=1)
    found = [data.items.tokens[i] == item for i, item in zip(top[:, 0], held_out.values(), strict=True)]
    assert sum(found) >= 0.9 * len(found)
