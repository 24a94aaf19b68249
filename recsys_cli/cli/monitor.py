"""`recsys monitor`: drift, performance, staleness and business KPIs of the
registry's production model, with an exit code a scheduler can act on."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from recsys_cli.cli._errors import friendly_errors
from recsys_cli.cli._options import DEFAULT_CONFIG_DIR, ConfigDir
from recsys_cli.console import esc


@friendly_errors
def monitor(
    overrides: Annotated[
        list[str] | None,
        typer.Argument(
            help="Hydra overrides, e.g. monitor.window.days=14 monitor.alert.command='notify-team --json'",
            show_default=False,
        ),
    ] = None,
    model: Annotated[
        str | None, typer.Option("--model", help="Registry model name (default: the only one that has the alias).")
    ] = None,
    alias: Annotated[str | None, typer.Option("--alias", help="Alias or version (default: production).")] = None,
    config_dir: ConfigDir = DEFAULT_CONFIG_DIR,
) -> None:
    """Compare the production model's training period with the lake's newest window.

    Data drift of the user, item and request-context features, item popularity and
    category mix (PSI, Kolmogorov-Smirnov, chi-squared, Jensen-Shannon; flagged when
    significant after Holm's correction and large); the model's metrics when fresh
    and now, overall and per user segment, with bootstrap intervals; staleness
    (unknown users and items, new products, model age); business KPIs per week
    with the registry's promotions.

    Writes drift.json, kpis.json, report.html and PNGs; exits with
    monitor.alert.exit_code (3) on an alert after running monitor.alert.command with
    the summary on its standard input.

    Example: recsys monitor --model synth-ease monitor.window.days=14
    """
    from recsys_cli.config import compose
    from recsys_cli.console import console, rich_progress
    from recsys_cli.tasks import monitor as task

    given = [*(overrides or []), *(f"{k}={v}" for k, v in (("model_name", model), ("alias", alias)) if v is not None)]
    cfg = compose("monitor", given, config_dir)
    with rich_progress() as reporter:
        result = task.run(cfg, reporter=reporter)
    for table in _tables(result.summary):
        console.print(table)
    for line in result.alerts:
        console.print(f"[bold red]alert:[/] {esc(line)}", highlight=False, soft_wrap=True)
    if result.hook is not None:
        state = (
            "ran" if result.hook.get("ok") else f"failed ({result.hook.get('error') or result.hook.get('returncode')})"
        )
        console.print(f"alert hook {esc(str(result.hook.get('command')))}: {state}")
    console.print(f"[green]monitoring written:[/] {result.folder} (drift.json, kpis.json, report.html, plots/)")
    if result.alerts:
        raise typer.Exit(int(cfg.monitor.alert.exit_code))


def _tables(s: dict[str, Any]) -> list[Any]:
    from recsys_cli.console import rows_table

    model = s["model"]
    drift = s["data_drift"]
    shown = sorted(drift["features"], key=lambda r: (not r["flagged"], -(r.get("psi") or 0.0)))[:15]
    features = rows_table(
        f"Data drift of {model['name']} v{model['version']} (cutoff {model['cutoff'][:10]}): "
        f"{len(drift['flagged'])} flagged of {len(drift['features']) + len(drift['distributions'])}",
        ["feature", "kind", "PSI", "JS", "p (Holm)", "flagged"],
        [
            [r["feature"], r["kind"], _f(r["psi"]), _f(r["js"]), _f(r["p_holm"]), "yes" if r["flagged"] else ""]
            for r in shown
        ]
        + [
            [d["name"], "distribution", _f(d["psi"]), _f(d["js"]), "-", "yes" if d["flagged"] else ""]
            for d in drift["distributions"]
        ],
    )
    perf = s.get("performance", {}).get("metrics", {})
    performance = rows_table(
        "Performance: fresh (after the cutoff) and now",
        ["metric", "fresh", "now", "change [interval]", "significant drop"],
        [
            [
                metric,
                _f(r["reference"]["value"]),
                _f(r["current"]["value"]),
                f"{_f(r['difference']['value'])} [{_f(r['difference']['low'])}, {_f(r['difference']['high'])}]",
                "yes" if r["significant_drop"] else "",
            ]
            for metric, r in perf.items()
        ],
    )
    stale = s.get("staleness", {})
    staleness = rows_table(
        "Staleness",
        ["", "value"],
        [
            ["model age (days)", _f(stale.get("model_age_days"))],
            ["events by unknown users", _pct(stale.get("unknown_user_share"))],
            ["events on unknown items", _pct(stale.get("unknown_item_share"))],
            ["new products the model cannot offer", _pct(stale.get("new_products", {}).get("share_unknown"))],
        ],
    )
    return [features, performance, staleness]


def _f(value: Any) -> str:
    return "-" if value is None else f"{float(value):.4g}"


def _pct(value: Any) -> str:
    return "-" if value is None else f"{float(value):.1%}"
