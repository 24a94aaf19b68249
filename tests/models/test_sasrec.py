"""SASRec: the sampled softmax learns the same planted sequences as the full one,
windowed training reads every transition of long histories, and on a shop's
clickstream it can learn from purchases alone while views stay its inputs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl

from recsys_cli.data.schema import Col
from recsys_cli.features.vocab import Vocabulary
from recsys_cli.models.base import Recommender
from recsys_cli.models.data import TrainData, interaction_matrix
from recsys_cli.models.sasrec import EVENT_CODES, sequence_steps
from tests.models.clickstream_shop import ranked, shop
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


def _steps_rows_equal_the_feature_sets_windows(data: TrainData) -> None:
    steps = sequence_steps(data)
    _, windows, _ = steps.windows(3, 2, minimum=2)
    assert (windows == data.sequence_windows(3, 2)).all()
    rows, latest, _ = steps.windows(3, None, minimum=1)
    matrix = np.full((data.n_users, 3), -1)
    matrix[rows] = latest
    assert (matrix == data.sequence_matrix(3)).all()


def test_unweighted_training_reads_the_rows_it_always_read(board: tuple[TrainData, dict[str, str]]) -> None:
    """Without event types in play the model's own windows are the feature set's, row
    for row and in the same order, so MovieLens figures stay as they were."""
    data, _ = board
    _steps_rows_equal_the_feature_sets_windows(data)
    _steps_rows_equal_the_feature_sets_windows(
        _shop({"long": [f"i{n}" for n in range(7)], "short": ["i0", "i1"], "single": ["i2"]})
    )


def test_dedupe_folds_a_run_of_one_item_into_its_strongest_event() -> None:
    data = shop([("u", "a", "view", 0), ("u", "a", "add_to_cart", 1), ("u", "a", "view", 2), ("u", "b", "view", 3)])
    steps = sequence_steps(data, dedupe=True)
    assert [data.items.tokens[i] for i in steps.items] == ["a", "b"]
    assert [EVENT_CODES[c] for c in steps.events] == ["add_to_cart", "view"]


def _planted_purchases() -> tuple[TrainData, dict[str, str]]:
    """Viewing a trigger item leads to buying its partner a few views later, while
    the views in between are random: the views' own next items are noise."""
    rng = np.random.default_rng(0)
    pairs = {f"t{k}": f"p{k}" for k in range(4)}
    events, minute = [], 0.0
    for n in range(120):
        trigger = f"t{n % 4}"
        noise = [f"n{j}" for j in rng.integers(0, 12, size=3)]
        for item, kind in [(trigger, "view"), *((x, "view") for x in noise), (pairs[trigger], "purchase")]:
            events.append((f"u{n}", item, kind, minute))
            minute += 1
    probes = {}
    for k, trigger in enumerate(pairs):
        user = f"probe{k}"
        for item in (trigger, f"n{k}", f"n{k + 4}"):
            events.append((user, item, "view", minute))
            minute += 1
        probes[user] = pairs[trigger]
    return shop(events), probes


def test_training_on_purchases_finds_what_a_viewed_item_leads_to() -> None:
    data, probes = _planted_purchases()
    model = make(
        "sasrec",
        "model.dim=16",
        "model.heads=1",
        "model.layers=1",
        "model.dropout=0.0",
        "model.max_len=6",
        "model.lr=0.01",
        "model.batch_size=16",
        "trainer.max_epochs=40",
        "model.target_events=[purchase]",
        "model.other_weight=0.0",
        "model.event_inputs=true",
    ).fit(data)
    # Only rows whose targets include a purchase are trained on.
    rows = model.train_dataset(data)
    assert len(rows.tensors) == 2 and ((rows.tensors[1][:, 1:] == EVENT_CODES.index("purchase")).any(dim=1)).all()
    found = [ranked(model, data, user, k=1)[0] == item for user, item in probes.items()]
    assert all(found)


def test_event_codes_are_saved_and_read_back(tmp_path: Path) -> None:
    data, probes = _planted_purchases()
    model = make("sasrec", "model.dim=8", "model.heads=1", "model.max_len=4", "trainer.max_epochs=1").fit(data)
    evented = make(
        "sasrec", "model.dim=8", "model.heads=1", "model.max_len=4", "model.event_inputs=true", "trainer.max_epochs=1"
    ).fit(data)
    assert "events" not in model._state() and "events" in evented._state()
    evented.save(tmp_path / "m")
    loaded = Recommender.load(tmp_path / "m")
    users = data.user_index(pl.Series(list(probes)))
    np.testing.assert_allclose(loaded.score(users), evented.score(users), rtol=1e-5, atol=1e-6)
