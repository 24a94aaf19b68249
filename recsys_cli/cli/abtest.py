"""`recsys abtest`: what would an online experiment between two runs show?"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from recsys_cli.cli._errors import friendly_errors
from recsys_cli.cli._options import DEFAULT_CONFIG_DIR, ConfigDir, Overrides
from recsys_cli.console import esc

_VERDICT_STYLE = {"better": "green", "worse": "red"}


@friendly_errors
def abtest(
    control: Annotated[Path, typer.Argument(help="Run folder of the control arm (written by `recsys train`).")],
    treatment: Annotated[Path, typer.Argument(help="Run folder of the treatment arm, trained on the same window.")],
    overrides: Overrides = None,
    out: Annotated[Path | None, typer.Option("--out", help="Output folder [<runs root>/abtests/<timestamp>/].")] = None,
    config_dir: ConfigDir = DEFAULT_CONFIG_DIR,
) -> None:
    """Simulate an online A/B test of two runs on the period's real traffic.

    Users are randomised by a salted hash; a click model fitted on the history plays
    each arm's slates. Reports CTR, add-to-cart rate, conversion, revenue per session,
    average order value and coverage with intervals and lifts, power for a target
    lift, a fixed-horizon or sequential (abtest/sequential=msprt) decision, and
    off-policy estimates from the logs.

    Example: recsys abtest runs/popularity/20260301T090000000000Z
    runs/ease/20260301T091500000000Z abtest/simulator=cascade abtest.target_lift=0.1
    """
    from recsys_cli.config import compose
    from recsys_cli.console import console, rich_progress
    from recsys_cli.tasks import abtest as task

    cfg = compose("abtest", overrides, config_dir)
    with rich_progress() as reporter:
        result = task.run(control, treatment, cfg, out, reporter)
    console.print(_header(result), highlight=False, soft_wrap=True)
    console.print(_metrics_table(result))
    console.print(_power_table(result))
    console.print(_sequential_line(result), highlight=False, soft_wrap=True)
    console.print(_offpolicy_table(result))
    console.print(result["summary"], highlight=False, soft_wrap=True)
    console.print(f"[green]experiment written:[/] {result['output']}")


def _header(result: dict[str, Any]) -> str:
    period, a = result["period"], result["assignment"]
    users, sessions = a["users"], a["sessions"]
    srm = f"sample ratio p={a['sample_ratio_p']:.3g}" if a["sample_ratio_p"] is not None else "sample ratio n/a"
    if a["sample_ratio_mismatch"]:
        srm = f"[bold red]{srm}: SAMPLE RATIO MISMATCH, do not trust these results[/]"
    return (
        f"[bold]{esc(result['control']['label'])}[/] (control) vs [bold]{esc(result['treatment']['label'])}[/] "
        f"(treatment) on the {period['part']} period {period['start'][:10]} to {period['end'][:10]} "
        f"({period['days']} days)\nusers {users['control']:,} / {users['treatment']:,} "
        f"(excluded {users['excluded']:,}), sessions {sessions['control']:,} / {sessions['treatment']:,}; {srm}"
    )


def _metrics_table(result: dict[str, Any]) -> Any:
    from recsys_cli.console import rows_table

    level = f"{result['confidence']:.0%}"
    simulator = result["simulator"]["simulator"].rsplit(".", 1)[-1]
    header = ["metric", f"control [{level}]", f"treatment [{level}]", f"lift [{level}]", "p", "MDE", "verdict"]
    rows = []
    for m in result["metrics"]:
        name = f"{m['metric']} *" if m["metric"] == result["primary_metric"] else m["metric"]
        rows.append(
            [
                name,
                _value(m["control"]),
                _value(m["treatment"]),
                _lift(m["lift"]),
                _p(m["lift"]["p_value"]),
                _pct(m["mde_relative"]),
                _verdict(m["lift"]),
            ]
        )
    title = f"Simulated experiment ({simulator}, slates of {result['slate_size']}); * primary metric"
    return rows_table(title, header, rows)


def _power_table(result: dict[str, Any]) -> Any:
    from recsys_cli.console import kv_table

    p = result["power"]
    needed = p["users_needed_control"]
    days = p["days_needed"] or (
        f"~{p['days_needed_extrapolated']:,} (extrapolated)" if p["days_needed_extrapolated"] else "n/a"
    )
    title = f"Power for a {p['target_lift']:.1%} lift in {result['primary_metric']}"
    return kv_table(
        f"{title} (alpha {p['alpha']}, power {p['power']})",
        {
            "control level": f"{p['baseline']:.4g} (sd per user {p['sd_per_user']:.4g})",
            "users needed per arm": f"{needed:,} / {p['users_needed_treatment']:,}" if needed is not None else "n/a",
            "users in this experiment": f"{p['users_control']:,} / {p['users_treatment']:,}",
            "power of this experiment": _pct(p["achieved_power"], signed=False),
            "minimum detectable lift": _pct(p["mde_relative"], signed=False),
            "days needed at this traffic": days,
        },
    )


def _sequential_line(result: dict[str, Any]) -> str:
    s = result["sequential"]
    if s["method"] == "msprt":
        when = f"stopped on day {s['decision_day']}" if s["decision_day"] else "no stop within the period"
        line = f"Sequential test (mSPRT, always-valid p-values): {s['decision']}, {when}."
    else:
        line = f"Fixed horizon: decided once on day {s['decision_day']}: {s['decision']}."
        if s["naive_stop_day"]:
            line += (
                f" [yellow]A daily peek at the naive p-value would have stopped on day {s['naive_stop_day']};"
                " with a fixed horizon that stop is not allowed.[/]"
            )
    return line


def _offpolicy_table(result: dict[str, Any]) -> Any:
    from recsys_cli.console import rows_table

    off = result["offpolicy"]
    level = f"{result['confidence']:.0%}"
    header = ["estimator", f"control [{level}]", f"treatment [{level}]", f"lift [{level}]", "p", "verdict"]
    rows = [
        [
            e["estimator"],
            _value(e["control"]),
            _value(e["treatment"]),
            _lift(e["lift"]),
            _p(e["lift"]["p_value"]),
            _verdict(e["lift"]),
        ]
        for e in off["estimators"]
    ]
    reward = "/".join(off["reward_events"])
    title = (
        f"Off-policy, model-free: {reward} rate of {off['actions']:,} logged {'/'.join(off['action_events'])} actions "
        f"(slate matches {off['matched']['control']:,} / {off['matched']['treatment']:,}; IPS clip {off['clip']:g})"
    )
    return rows_table(title, header, rows)


def _value(e: dict[str, Any]) -> str:
    if e["value"] is None:
        return "n/a"
    if e["low"] is None or e["high"] is None:
        return f"{e['value']:.4g}"
    return f"{e['value']:.4g} [{e['low']:.4g}, {e['high']:.4g}]"


def _lift(lift: dict[str, Any]) -> str:
    rel, low, high = lift["relative"], lift["relative_low"], lift["relative_high"]
    if rel is None:
        return "n/a"
    if low is None or high is None:
        return f"{rel:+.1%}"
    return f"{rel:+.1%} [{low:+.1%}, {high:+.1%}]"


def _verdict(lift: dict[str, Any]) -> str:
    if not lift["significant"] or lift["difference"] is None:
        return "no significant difference"
    word = "better" if lift["difference"] > 0 else "worse"
    return f"[{_VERDICT_STYLE[word]}]{word}[/]"


def _pct(value: float | None, signed: bool = False) -> str:
    if value is None:
        return "n/a"
    return f"{value:+.1%}" if signed else f"{value:.1%}"


def _p(p: float | None) -> str:
    if p is None:
        return "n/a"
    return "<0.0001" if p < 1e-4 else f"{p:.4f}"
