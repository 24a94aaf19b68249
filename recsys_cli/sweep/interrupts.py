"""Ctrl-C and SIGTERM stop a sweep at a safe point, never in the middle of a
storage write or of a trial's config composition.

Python raises a signal's KeyboardInterrupt wherever the main thread happens to
be. Inside an SQLAlchemy commit that leaves a study's database session half
done (Optuna rolls back on `Exception` only), and the write that should then
record the trial as interrupted can hang on it. Inside Hydra's composition the
interrupt can come out as a composition error instead (OmegaConf reads it as a
missing key: seen in about 4% of interrupts timed at random, and in a CI run),
which fails the trial and loses the stop. So a signal only marks the interrupt
as pending; it is raised at the next safe point: the end of a training or
validation batch (a Lightning callback), the start of a fit, or between trials.
A second signal while one is pending interrupts at once, except inside storage
code: the way out of a long closed-form fit, which has no batches.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

# Code that writes a study: even a second signal waits for the next safe point here.
_STORAGE_CODE = ("/sqlalchemy/", "/optuna/storages/", "/sqlite3/", "/psycopg/")
_pending = False


@contextmanager
def deferred_interrupts() -> Iterator[None]:
    """Install the handler for SIGINT and SIGTERM (a scheduler stopping the job
    ends the sweep the way Ctrl-C does); restore the previous ones on exit."""
    global _pending
    _pending = False
    previous: dict[int, Any] = {}
    try:
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous[sig] = signal.signal(sig, _interrupt)
    except ValueError:  # not the main thread: signals are not ours to handle
        pass
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
        _pending = False


def raise_if_pending() -> None:
    """A safe point: raise the interrupt that arrived during a storage write."""
    global _pending
    if _pending:
        _pending = False
        raise KeyboardInterrupt


def interrupt_callback() -> Any:
    """A Lightning callback that makes every batch end a safe point."""
    import lightning.pytorch as L

    class _AtBatchEnd(L.Callback):
        def on_train_batch_end(self, *args: Any, **kwargs: Any) -> None:
            raise_if_pending()

        def on_validation_batch_end(self, *args: Any, **kwargs: Any) -> None:
            raise_if_pending()

    return _AtBatchEnd()


def _interrupt(signum: int, frame: FrameType | None) -> None:
    global _pending
    if _pending and not _in_storage(frame):
        _pending = False
        raise KeyboardInterrupt
    _pending = True


def _in_storage(frame: FrameType | None) -> bool:
    while frame is not None:
        if any(part in frame.f_code.co_filename for part in _STORAGE_CODE):
            return True
        frame = frame.f_back
    return False
