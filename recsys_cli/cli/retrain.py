"""`recsys retrain`: move the production model's window forward, warm start or
refit, and promote only what is not worse on the newest window."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from recsys_cli.cli._errors import friendly_errors
from recsys_cli.cli._options import DEFAULT_CONFIG_DIR, ConfigDir
from recsys_cli.console import esc


@friendly_errors
def retrain(
    overrides: Annotated[
        list[str] | None,
        typer.Argument(
            help="Hydra overrides, e.g. retrain.policy.mode=full retrain.window.kind=fixed retrain.append.raw=true",
            show_default=False,
        ),
    ] = None,
    model: Annotated[
        str | None, typer.Option("--model", help="Registry model name (default: the only one that has the alias).")
    ] = None,
    alias: Annotated[
        str | None, typer.Option("--alias", help="The alias to retrain and move (default: production).")
    ] = None,
    config_dir: ConfigDir = DEFAULT_CONFIG_DIR,
) -> None:
    """Retrain the production model on the newest data; promote only what is not worse.

    Appends new data (retrain.append), holds out the lake's newest
    retrain.window.eval_days, warm starts from the production package (or refits
    when the shop moved past retrain.policy.full_when), scores both models on the
    held-out window user by user, pushes the candidate with the decision in its
    registry record and moves the alias only when the guard allows. Running it
    again on the same lake and settings does nothing new; a crash at any step
    leaves production as it was. Writes retrain/<model>/<key>/retrain.json.

    Example: recsys retrain --model synth-ease retrain.policy.mode=full
    """
    from recsys_cli.config import compose
    from recsys_cli.console import console, rich_progress
    from recsys_cli.tasks import retrain as task

    given = [*(overrides or []), *(f"{k}={v}" for k, v in (("model_name", model), ("alias", alias)) if v is not None)]
    cfg = compose("retrain", given, config_dir)
    with rich_progress() as reporter:
        result = task.run(cfg, reporter=reporter, config_dir=config_dir)
    record = result.record
    if result.folder is None:
        console.print(f"[yellow]nothing to retrain:[/] {esc(str(record.get('reason')))}", soft_wrap=True)
        return
    if not result.new:
        console.print(
            f"[green]already retrained[/] on this lake with these settings ({record['state']}, "
            f"version {record.get('version')}): nothing new; {result.folder / 'retrain.json'}",
            soft_wrap=True,
            highlight=False,
        )
        return
    console.print(_table(record["decision"]))
    decision = record["decision"]
    verb = "[green]promoted[/]" if record["state"] == "promoted" else "[yellow]kept production[/]"
    console.print(
        f"{verb}: candidate v{record.get('version')} of {esc(record['model']['name'])} "
        f"({decision['policy']['mode']} retrain: {esc(decision['policy']['reason'])})",
        soft_wrap=True,
        highlight=False,
    )
    for line in decision["guard"]["reasons"]:
        console.print(f"  {esc(line)}", soft_wrap=True, highlight=False)
    ab = decision.get("abtest")
    if ab:
        lift = (ab.get("metric") or {}).get("lift") or {}
        shown = (
            f"{lift['relative']:+.1%} [{lift['relative_low']:+.1%}, {lift['relative_high']:+.1%}], "
            if lift.get("relative") is not None and lift.get("relative_low") is not None
            else ""
        )
        console.print(
            f"simulated A/B test: {ab['primary_metric']} {shown}{ab['verdict']} ({esc(ab['folder'])})",
            soft_wrap=True,
            highlight=False,
        )
    console.print(f"[green]retrain written:[/] {result.folder / 'retrain.json'}", soft_wrap=True)


def _table(decision: dict[str, Any]) -> Any:
    from recsys_cli.console import rows_table

    held = decision["held_out"]
    rows = []
    for metric, boot in decision["guard"]["metrics"].items():
        rows.append(
            [
                metric,
                held["candidate"].get(metric),
                held["production"].get(metric),
                f"{boot['relative']:+.1%}" if boot.get("relative") is not None else "-",
                f"[{boot['relative_low']:+.1%}, {boot['relative_high']:+.1%}]"
                if boot.get("relative_low") is not None
                else "-",
            ]
        )
    users = held["users"]
    return rows_table(
        f"Candidate against production v{decision['production']['version']} on the held-out window "
        f"({users['users_compared']:,} users both know; {users['candidate_only_users']:,} only the candidate knows)",
        ["metric", "candidate", "production", "change", "interval"],
        rows,
    )
