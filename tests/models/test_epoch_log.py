"""A fit without a progress bar says how it goes: one log line per epoch."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import polars as pl
import pytest

from recsys_cli.config import build, compose
from recsys_cli.models.data import TrainData
from recsys_cli.models.validation import Targets

LOGGER = "recsys_cli.models.lightning"
SMALL = ["model=bpr_mf", "trainer=smoke", "trainer.max_epochs=3", "model.dim=8", "model.batch_size=16"]


def lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == LOGGER]


def test_a_quiet_fit_logs_each_epoch_with_loss_validation_and_best(
    board: tuple[TrainData, dict[str, str]], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    data, held_out = board
    targets = Targets.from_frame(pl.DataFrame({"user_id": list(held_out), "item_id": list(held_out.values())}), data)
    model = build(compose("train", [*SMALL, "model.patience=5"]).model)
    with caplog.at_level(logging.INFO, logger=LOGGER):
        model.fit(data, validation=targets, workdir=tmp_path)
    logged = lines(caplog)
    assert [line.split(",")[0] for line in logged] == ["epoch 1/3", "epoch 2/3", "epoch 3/3"]
    pattern = r"epoch \d/3, train/loss \d+\.\d{4}, val/ndcg@10 \d\.\d{4} \(best \d\.\d{4} at epoch \d\), \d+\.\d s"
    assert all(re.fullmatch(pattern, line) for line in logged), logged
    best = re.search(r"best (\d\.\d{4}) at epoch (\d)", logged[-1])
    assert best is not None and int(best.group(2)) == model.best_epoch
    assert float(best.group(1)) == pytest.approx(model.best_score, abs=1e-4)


def test_a_refit_logs_its_epochs_without_validation(
    board: tuple[TrainData, dict[str, str]], caplog: pytest.LogCaptureFixture
) -> None:
    data, _ = board
    with caplog.at_level(logging.INFO, logger=LOGGER):
        build(compose("train", SMALL).model).fit(data)
    logged = lines(caplog)
    assert len(logged) == 3 and all("val/" not in line and "train/loss" in line for line in logged)


def test_a_progress_bar_on_a_terminal_replaces_the_lines(
    board: tuple[TrainData, dict[str, str]], caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    from recsys_cli.models import lightning

    data, _ = board
    monkeypatch.setattr(lightning, "_terminal", lambda: True)
    with caplog.at_level(logging.INFO, logger=LOGGER):
        build(compose("train", [*SMALL, "trainer.enable_progress_bar=true"]).model).fit(data)
    assert lines(caplog) == []
