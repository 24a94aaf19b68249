"""Admission (serving/admission.py): a bounded number of requests score at once; the
others wait their turn, and one that waited too long is refused, not left to time out."""

from __future__ import annotations

import threading
import time

import pytest

from recsys_cli.serving.admission import Admission, Overloaded, available_cpus


def test_no_more_than_max_active_hold_a_turn_at_once() -> None:
    admission = Admission(max_active=2, max_wait_s=5.0)
    inside, most, lock = 0, 0, threading.Lock()

    def work() -> None:
        nonlocal inside, most
        with admission.turn():
            with lock:
                inside += 1
                most = max(most, inside)
            time.sleep(0.02)
            with lock:
                inside -= 1

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert most == 2 and inside == 0


def test_a_request_that_waits_past_max_wait_is_refused_and_the_turn_is_free_again() -> None:
    admission = Admission(max_active=1, max_wait_s=0.05)
    with admission.turn() as waited:
        assert waited < 0.05
        with pytest.raises(Overloaded, match="at capacity"):
            with admission.turn():
                pass  # pragma: no cover - never reached
    with admission.turn():  # the refused request took no slot with it
        pass


def test_a_waiting_request_gets_the_turn_when_one_is_released() -> None:
    admission = Admission(max_active=1, max_wait_s=5.0)
    got: list[float] = []
    release = threading.Event()

    def holder() -> None:
        with admission.turn():
            release.wait(5)

    def waiter() -> None:
        with admission.turn() as waited:
            got.append(waited)

    first = threading.Thread(target=holder)
    first.start()
    time.sleep(0.02)
    second = threading.Thread(target=waiter)
    second.start()
    time.sleep(0.05)
    assert got == []  # still waiting
    release.set()
    first.join()
    second.join()
    assert len(got) == 1 and got[0] >= 0.04


def test_the_default_is_one_turn_per_cpu_the_process_may_use() -> None:
    assert Admission(None, 1.0).max_active == available_cpus() >= 1
