"""`python -m tests.serving.serve_fake OVERRIDES...`: `recsys serve`'s task with the fake
engine (tests/serving/fakes.py), in a process of its own, for the tests that kill it.
Prints `listening PORT` on stdout once the socket is bound (serve.port=0: a free one)."""

from __future__ import annotations

import sys

from recsys_cli.config import compose
from recsys_cli.tasks import serve as task
from tests.serving.fakes import FakeEngine, install_engine_stub


def main(overrides: list[str]) -> None:
    install_engine_stub()
    cfg = compose("serve", overrides)
    prepared = task.prepare(cfg, overrides, engine_factory=FakeEngine.load)
    task.run(prepared, on_listening=lambda host, port: print(f"listening {port}", flush=True))


if __name__ == "__main__":
    main(sys.argv[1:])
