"""The last step of `make demo`: serve the model just promoted, ask it once, tell
it about one event, ask again, stop.

Starts `recsys serve --port 0` (a free loopback port) with an API key made up for
this run, sends `POST /recommend` for a shopper of the raw log (their raw id: the
service pseudonymises it with the lake's key), `POST /events` with a purchase of
the first item offered, then the same request again (the bought item is not
offered again, the rest are scored with it), printing both answers, and stops
the service with SIGTERM.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.table import Table

from recsys_cli.console import make_console

LISTENING = re.compile(r"on (http://[\w.\[\]:-]+)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--events", type=Path, default=Path("data/raw/synth/events.csv"), help="raw log to pick a shopper from"
    )
    parser.add_argument("--user-column", default="customer_id")
    parser.add_argument("--time-column", default="event_time")
    parser.add_argument("--k", type=int, default=5)
    parser.add_argument("overrides", nargs="*", help="Hydra overrides for recsys serve")
    args = parser.parse_args()
    console = make_console()
    user = light_shopper(args.events, args.user_column, args.time_column)
    key = os.environ.get("RECSYS_API_KEY") or secrets.token_hex(16)
    env = {**os.environ, "RECSYS_API_KEY": key}
    recsys = Path(sys.executable).with_name("recsys")
    command = [str(recsys), "serve", "--port", "0", *args.overrides]
    server = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        base = wait_until_listening(server, console)
        with httpx.Client(base_url=base, timeout=30.0) as client:
            first = ask(client, user, args.k)
            show(console, "POST /recommend", first)
            item = first["items"][0]
            accepted = client.post(
                "/events",
                json={"events": [{"user_id": user, "item_id": item, "event_type": "purchase"}]},
                headers={"Authorization": f"Bearer {key}"},
            )
            accepted.raise_for_status()
            console.print(f"POST /events: purchase of {item} -> {json.dumps(accepted.json())}", highlight=False)
            second = ask(client, user, args.k)
            show(console, "POST /recommend after the event", second)
            moved = first["items"] != second["items"]
            console.print(f"[green]the answer {'changed' if moved else 'did not change'} after one event[/]")
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
    console.print("[green]service stopped[/]")


def light_shopper(events: Path, column: str, time_column: str) -> str:
    """A raw id with a short history that ended early in the raw log: one the model
    met (their events fall before its cutoff) and whose next answer one event can
    move, as it would for most shoppers."""
    import polars as pl

    log = pl.scan_csv(events).select(pl.col(column).cast(pl.String), pl.col(time_column).cast(pl.String))
    middle = log.select(pl.col(time_column).sort().get(pl.len() // 2)).collect().item()
    counts = log.group_by(column).agg(pl.len().alias("n"), pl.col(time_column).max().alias("last"))
    light = counts.filter((pl.col("n") >= 3) & (pl.col("last") < middle)).sort("n", column).collect()
    return str((light if light.height else counts.sort("n", descending=True).collect())[column][0])


def wait_until_listening(server: subprocess.Popen[str], console: Console, timeout_s: float = 120.0) -> str:
    assert server.stdout is not None
    start = time.monotonic()
    for line in server.stdout:
        console.print(line.rstrip(), highlight=False, soft_wrap=True)
        found = LISTENING.search(line)
        if found:
            return found.group(1)
        if time.monotonic() - start > timeout_s:
            break
    raise SystemExit(f"recsys serve did not start (exit code {server.poll()})")


def ask(client: httpx.Client, user: str, k: int) -> dict[str, Any]:
    answer = client.post("/recommend", json={"user_id": user, "k": k, "explain": False})
    answer.raise_for_status()
    return dict(answer.json())


def show(console: Console, title: str, answer: dict[str, Any]) -> None:
    model = answer.get("model") or {}
    table = Table(title=f"{title}: {model.get('name')} v{model.get('version')}, fallback {answer.get('fallback')}")
    table.add_column("rank", justify="right")
    table.add_column("item")
    table.add_column("score", justify="right")
    for rank, (item, score) in enumerate(zip(answer["items"], answer["scores"], strict=True), 1):
        table.add_row(str(rank), item, f"{score:.4f}")
    console.print(table)
    stages = ", ".join(f"{k} {v:.2f} ms" for k, v in (answer.get("stages_ms") or {}).items())
    console.print(f"stages: {stages or '(cached)'}", highlight=False)


if __name__ == "__main__":
    main()
