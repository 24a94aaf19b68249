"""Two-tower with the user's history: on a shop's clickstream, where most visitors
come once, the user tower reads what the user just did, so a visitor who never
bought anything still gets what their views lead to."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl

from recsys_cli.models.base import Recommender
from recsys_cli.models.data import TrainData
from tests.models.clickstream_shop import ranked, shop
from tests.models.test_contract import make

HISTORY = ["model.history=4", "model.dim=16", "model.dropout=0.0", "model.batch_size=16", "model.negatives=16"]


def _views_lead_to_purchases() -> tuple[TrainData, dict[str, str]]:
    """Viewing trigger t<k> (after a random view) leads to buying p<k>; each probe
    visitor only viewed one other item and then a trigger, and bought nothing."""
    rng = np.random.default_rng(0)
    events, minute = [], 0.0
    for n in range(160):
        k = n % 4
        for item, kind in [(f"n{rng.integers(0, 12)}", "view"), (f"t{k}", "view"), (f"p{k}", "purchase")]:
            events.append((f"u{n}", item, kind, minute))
            minute += 1
    probes = {}
    for k in range(4):
        for item in (f"n{k}", f"t{k}"):
            events.append((f"probe{k}", item, "view", minute))
            minute += 1
        probes[f"probe{k}"] = f"p{k}"
    return shop(events), probes


def test_a_visitor_who_only_viewed_gets_what_the_views_lead_to() -> None:
    data, probes = _views_lead_to_purchases()
    model = make(
        "two_tower",
        *HISTORY,
        "model.lr=0.01",
        "trainer.max_epochs=100",
        "model.target_events=[purchase]",
        "model.other_weight=0.0",
    ).fit(data)
    assert [ranked(model, data, user, k=1)[0] for user in probes] == list(probes.values())


def test_events_are_examples_with_only_what_came_before_them() -> None:
    data, _ = _views_lead_to_purchases()
    model = make("two_tower", *HISTORY, "model.target_events=[purchase]", "model.other_weight=0.0")
    module = model.build_module(data)
    users, items, position, weights = model.train_dataset(data).tensors
    assert {data.items.tokens[i] for i in items.tolist()} == {"p0", "p1", "p2", "p3"}  # purchases only
    assert (weights == 1.0).all()
    # u0 viewed a random item, then t0, then bought p0: its example's history is the
    # two views, left-padded, and never the purchase itself.
    row = int((users == int(data.user_index(pl.Series(["u0"]))[0])).nonzero()[0, 0])
    history, events = module._histories(position[row : row + 1])
    assert history[0, :2].tolist() == [data.n_items] * 2
    assert data.items.tokens[int(history[0, 3])] == "t0" and data.items.tokens[int(items[row])] == "p0"
    assert events[0, :2].tolist() == [0, 0]


def test_history_is_saved_and_read_back(tmp_path: Path) -> None:
    data, probes = _views_lead_to_purchases()
    model = make("two_tower", *HISTORY, "trainer.max_epochs=1").fit(data)
    assert "history_items" in model._state() and "step_items" not in model._state()
    assert "history_items" not in make("two_tower", "trainer.max_epochs=1").fit(data)._state()
    model.save(tmp_path / "m")
    loaded = Recommender.load(tmp_path / "m")
    users = data.user_index(pl.Series(list(probes)))
    np.testing.assert_allclose(loaded.score(users), model.score(users), rtol=1e-5, atol=1e-6)
