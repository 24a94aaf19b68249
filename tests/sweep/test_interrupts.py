"""A stop signal waits for the next safe point, so it never cuts a study's storage
write or a trial's config composition in half; a second one interrupts at once,
except inside storage code."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from recsys_cli.sweep.interrupts import deferred_interrupts, interrupt_callback, raise_if_pending


def _as_if_in(path: str) -> Callable[[Callable[[], None]], None]:
    """Run a function from a frame whose code claims to live at `path`."""
    namespace: dict[str, Any] = {}
    exec(compile("def call(f):\n    f()\n", path, "exec"), namespace)
    return namespace["call"]


def _terminate() -> None:
    os.kill(os.getpid(), signal.SIGTERM)


def test_a_signal_during_a_storage_write_waits_for_the_next_safe_point() -> None:
    in_storage = _as_if_in("/venv/lib/python3.11/site-packages/sqlalchemy/orm/session.py")
    with deferred_interrupts():
        in_storage(_terminate)  # the write finishes undisturbed
        with pytest.raises(KeyboardInterrupt):
            raise_if_pending()
        raise_if_pending()  # raised once only


def test_a_signal_during_config_composition_waits_for_the_next_safe_point() -> None:
    from recsys_cli.config import compose

    compose("train", ["model=bpr_mf"])  # imports done: a composition takes tens of ms
    with deferred_interrupts():
        for delay in (0.001, 0.004, 0.01, 0.02, 0.04):
            sender = threading.Timer(delay, _terminate)
            sender.start()
            cfg = compose("train", ["model=bpr_mf"])  # never cut short, whenever the signal lands
            sender.join()
            time.sleep(0.01)  # the handler has run by now
            assert cfg.model.lr > 0
            with pytest.raises(KeyboardInterrupt):
                raise_if_pending()


def test_a_second_signal_interrupts_at_once_outside_storage_code() -> None:
    elsewhere = _as_if_in("/work/recsys_cli/models/ease.py")
    in_storage = _as_if_in("/venv/lib/python3.11/site-packages/sqlalchemy/engine/base.py")
    with deferred_interrupts():
        elsewhere(_terminate)  # the first one is held
        in_storage(_terminate)  # a second during a write still waits
        with pytest.raises(KeyboardInterrupt):
            elsewhere(_terminate)  # the user insists: at once
        raise_if_pending()  # and nothing is left pending


def test_every_batch_end_is_a_safe_point() -> None:
    in_storage = _as_if_in("/venv/lib/python3.11/site-packages/optuna/storages/_rdb/storage.py")
    callback = interrupt_callback()
    with deferred_interrupts():
        callback.on_train_batch_end()  # nothing pending: training goes on
        in_storage(_terminate)
        with pytest.raises(KeyboardInterrupt):
            callback.on_train_batch_end()


def test_the_previous_handlers_come_back() -> None:
    before = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
    with deferred_interrupts():
        assert signal.getsignal(signal.SIGTERM) is not before[0]
    assert (signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)) == before
