"""`recsys monitor` end to end: a package promoted in a registry, its lake, and the
report, exit code and alert hook a scheduler acts on."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from recsys_cli.cli import app
from recsys_cli.registry.store import Registry
from tests.registry.package_shop import exported, shop

QUIET = ["monitor.performance.resamples=200", "monitor.kpis.resamples=200", "monitor.window.history=2"]


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> str:
    uri = str(tmp_path_factory.mktemp("monitor_registry") / "registry")
    reg = Registry(uri)
    version = reg.push(exported(tmp_path_factory, "als"), "shop-als")["version"]
    reg.promote("shop-als", int(version), "production")
    return uri


def monitor(registry: str, out: Path, *overrides: str) -> tuple[int, str]:
    result = CliRunner().invoke(
        app, ["monitor", f"registry.uri={registry}", f"out_dir={out}", *QUIET, *overrides], catch_exceptions=False
    )
    return result.exit_code, result.output


def test_a_quiet_shop_writes_the_report_and_exits_zero(registry: str, tmp_path: Path) -> None:
    never = ["monitor.drift.min_samples=1000000", "monitor.performance.min_relative_drop=0.99"]
    code, output = monitor(registry, tmp_path / "mon", *never, "monitor.staleness.max_unknown_item_share=null")
    assert code == 0, output
    summary = json.loads((tmp_path / "mon" / "drift.json").read_text())
    assert summary["alerts"] == [] and summary["model"]["name"] == "shop-als"
    assert {"reference", "fresh", "current"} <= set(summary["windows"])
    families = {row["feature"].split(".")[0] for row in summary["data_drift"]["features"]}
    assert families == {"user", "item", "context"}
    assert {d["name"] for d in summary["data_drift"]["distributions"]} >= {"item popularity", "category mix"}
    assert set(summary["performance"]["metrics"]) == {"ndcg@10", "recall@10"}
    assert 0 <= summary["staleness"]["unknown_user_share"] <= 1
    kpis = json.loads((tmp_path / "mon" / "kpis.json").read_text())
    assert kpis["period"] == "week" and (tmp_path / "mon" / "report.html").read_text().startswith("<!DOCTYPE html>")
    assert "C0" not in (tmp_path / "mon" / "drift.json").read_text()  # raw customer ids never reach a report


def test_an_alert_exits_with_its_code_after_the_hook_read_the_summary(registry: str, tmp_path: Path) -> None:
    hook, heard = tmp_path / "hook.py", tmp_path / "heard.json"
    hook.write_text(f"import sys\nopen({str(heard)!r}, 'w').write(sys.stdin.read())\n")
    command = f"monitor.alert.command='{sys.executable} {hook}'"
    code, output = monitor(
        registry, tmp_path / "mon", "monitor.staleness.max_age_days=1", command, "--model", "shop-als"
    )
    assert code == 3, output
    assert "alert:" in output and "staleness: model_age_days" in output and "alert hook" in output
    told = json.loads(heard.read_text())
    assert any(a.startswith("staleness: model_age_days") for a in told["alerts"])


def test_a_planted_category_surge_after_the_cutoff_is_flagged(
    registry: str, tmp_path_factory: pytest.TempPathFactory, tmp_path: Path
) -> None:
    """The same shop, but one category's demand times eight in its last two weeks:
    the raw ids and the events before the shock are the package's, so the model's
    pseudonyms still match."""
    root = tmp_path_factory.mktemp("shocked")
    shock = "+data.generator.shocks=[{kind:category_surge,start_day:76,category:3,factor:8.0}]"
    runner = CliRunner()
    for args in (
        ["datasets", "synth", "data.generator.n_events=4000", "data.generator.n_days=90", shock],
        ["ingest"],
    ):
        result = runner.invoke(app, [*args, f"paths.data_dir={root}"], catch_exceptions=False)
        assert result.exit_code == 0, result.output
    lake = next(p for p in (root / "lake").iterdir() if p.is_dir())
    small = ["monitor.drift.min_samples=30", "monitor.window.days=14"]
    code, output = monitor(registry, tmp_path / "shocked", f"lake={lake}", *small)
    summary = json.loads((tmp_path / "shocked" / "drift.json").read_text())
    mix = next(d for d in summary["data_drift"]["distributions"] if d["name"] == "category mix")
    assert mix["flagged"] and code == 3, output
    plain, _ = monitor(registry, tmp_path / "plain", f"lake={shop_lake(tmp_path_factory)}", *small)
    calm = json.loads((tmp_path / "plain" / "drift.json").read_text())
    calm_mix = next(d for d in calm["data_drift"]["distributions"] if d["name"] == "category mix")
    # The plain shop drifts too (seasonal tastes, ~700 events a window): the surge is far larger.
    assert mix["psi"] > 4 * calm_mix["psi"] and mix["js"] > 2 * calm_mix["js"]


def shop_lake(factory: pytest.TempPathFactory) -> Path:
    return next(p for p in (shop(factory) / "lake").iterdir() if p.is_dir())


def test_a_report_only_feature_keeps_its_figures_but_never_alerts() -> None:
    import polars as pl

    from recsys_cli.tasks.monitor import _report_only

    rows = pl.DataFrame(
        {"feature": ["item.first_seen_days", "item.price"], "flagged": [True, True], "reason": ["shifted", "shifted"]}
    )
    out = _report_only(rows, ["item.first_seen_days"]).to_dicts()
    assert out[0]["flagged"] is False and out[0]["reason"].startswith("reported only")
    assert out[1] == {"feature": "item.price", "flagged": True, "reason": "shifted"}
