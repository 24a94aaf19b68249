"""`recsys features` and `recsys check-leakage`."""

from __future__ import annotations

from recsys_cli.cli._errors import friendly_errors
from recsys_cli.cli._options import DEFAULT_CONFIG_DIR, ConfigDir, Overrides, Verify


@friendly_errors
def features(overrides: Overrides = None, verify: Verify = True, config_dir: ConfigDir = DEFAULT_CONFIG_DIR) -> None:
    """Build point-in-time features for every fold of a split.

    Interactions, sequences, user and item aggregates and vocabularies, each from
    events strictly before its cutoff.

    Example: recsys features features=ranker
    """
    from recsys_cli.config import compose
    from recsys_cli.console import console, rich_progress, rows_table
    from recsys_cli.tasks import features as task

    cfg = compose("features", overrides, config_dir)
    with rich_progress() as reporter:
        result = task.run(cfg, reporter=reporter, verify=verify)
    tables = ("interactions", "sequences", "user_features", "item_features")
    rows = [
        (
            f["name"],
            part,
            info["cutoff"][:16].replace("T", " "),
            *(info["rows"][t] for t in tables),
            sum(v for k, v in info["rows"].items() if k.startswith("ranker/") and k.endswith("/labels")),
        )
        for f in result.manifest["folds"]
        for part, info in f["parts"].items()
    ]
    header = ["fold", "predicts", "cutoff", "interactions", "sequences", "users", "items", "ranker labels"]
    console.print(rows_table("Features", header, rows))
    console.print(f"[green]features written:[/] {result.path} (manifest.json)")


@friendly_errors
def check_leakage(overrides: Overrides = None, config_dir: ConfigDir = DEFAULT_CONFIG_DIR) -> None:
    """Prove the features are point-in-time; exit 1 naming each leak.

    Perturbs, deletes and adds events at or after each cutoff and checks that no
    training feature changes.

    Example: recsys check-leakage features=ranker
    """
    from recsys_cli.config import compose
    from recsys_cli.console import console
    from recsys_cli.errors import LeakageError
    from recsys_cli.tasks import features as task

    cfg = compose("features", overrides, config_dir)
    leaks = task.leakage(cfg)
    if leaks:
        for leak in leaks[:20]:
            console.print(f"[red]leak:[/] {leak}")
        hint = (
            " (leave-last-N assigns parts per user and leaks global time by design)"
            if (cfg.split.name == "leave_last_n")
            else ""
        )
        raise LeakageError(f"{len(leaks)} leak(s): features depend on events at or after their cutoff{hint}")
    console.print("[green]no leakage:[/] every training feature is unchanged by events at or after its cutoff")
