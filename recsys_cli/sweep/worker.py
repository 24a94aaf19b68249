"""Entry point of one worker process started by `recsys sweep --workers N`:

    python -m recsys_cli.sweep.worker PLAN_JSON INDEX

Exits 0 when a limit was reached, 130 when interrupted, 1 on an error (with the
traceback in its log)."""

from __future__ import annotations

import sys
from pathlib import Path

from recsys_cli.sweep.workers import INTERRUPTED_EXIT


def main(argv: list[str]) -> int:
    from recsys_cli.sweep.loop import INTERRUPTED, run_trials
    from recsys_cli.sweep.plan import SweepPlan

    plan_file, index = Path(argv[0]), int(argv[1])
    outcome = run_trials(SweepPlan.from_json(plan_file.read_text()), index)
    print(f"worker {index}: stopped ({outcome.stopped}) after {outcome.ran} trial(s)", flush=True)
    return INTERRUPTED_EXIT if outcome.stopped == INTERRUPTED else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
