"""`recsys split`: time cutoffs and evaluation targets over a lake."""

from __future__ import annotations

from recsys_cli.cli._errors import friendly_errors
from recsys_cli.cli._options import DEFAULT_CONFIG_DIR, ConfigDir, Overrides, Verify, help_choices


@help_choices("split", "target")
@friendly_errors
def split(overrides: Overrides = None, verify: Verify = True, config_dir: ConfigDir = DEFAULT_CONFIG_DIR) -> None:
    """Split a lake by time and write each fold's evaluation targets.

    Splits: split={split}; targets: target={target}.

    Example: recsys split split=rolling_origin target=purchases
    """
    from recsys_cli.config import compose
    from recsys_cli.console import console, rich_progress, rows_table
    from recsys_cli.tasks import split as task

    cfg = compose("split", overrides, config_dir)
    with rich_progress() as reporter:
        result = task.run(cfg, reporter=reporter, verify=verify)
    rows = []
    for f in result.manifest["folds"]:
        p, t = f["parts"], f["targets"]["test"]
        rows.append(
            (
                f["name"],
                _short(f["val_start"]),
                _short(f["test_start"]),
                p["train"]["rows"],
                p["val"]["rows"],
                p["test"]["rows"],
                t["evaluated_users"],
                t["pairs"],
                t["cold_users"],
            )
        )
    header = [
        "fold",
        "val from",
        "test from",
        "train rows",
        "val rows",
        "test rows",
        "test users",
        "test pairs",
        "cold users",
    ]
    console.print(rows_table(f"Split {result.manifest['protocol']['name']}", header, rows))
    console.print(f"[green]split written:[/] {result.path} (manifest.json)")


def _short(instant: str | None) -> str:
    return instant[:16].replace("T", " ") if instant else "per user"
