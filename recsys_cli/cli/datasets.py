"""`recsys datasets`: the data sources we ship configs for, and the synthetic shop."""

from __future__ import annotations

from recsys_cli.cli._errors import friendly_errors
from recsys_cli.cli._help import Typer
from recsys_cli.cli._options import DEFAULT_CONFIG_DIR, ConfigDir, Overrides

app = Typer(
    help="List data sources; generate the synthetic shop.\n\nExample: recsys datasets synth", no_args_is_help=True
)


@app.command("list")
@friendly_errors
def list_(overrides: Overrides = None, config_dir: ConfigDir = DEFAULT_CONFIG_DIR) -> None:
    """Every data source config in conf/data/, whether its raw files are present, and its lake.

    The string's data= and data.* overrides describe one source, the one it names
    (data=, else synth): they change that source's row only.

    Example: recsys datasets list paths.data_dir=/srv/shop
    """
    from pathlib import Path

    from recsys_cli.config import compose
    from recsys_cli.console import console, rows_table
    from recsys_cli.errors import ConfigError

    sources = sorted((Path(config_dir) / "data").glob("*.yaml"))
    if not sources:
        raise ConfigError(f"{Path(config_dir) / 'data'}: no data source configs; is --config-dir a conf folder?")
    given = list(overrides or [])
    chosen = str(compose("ingest", given, config_dir).data.name)  # the whole string checked once
    rest = [o for o in given if o.lstrip("+~").split("=")[0].split(".")[0] != "data"]
    rows = []
    for path in sources:
        cfg = compose("ingest", [f"data={path.stem}", *(given if path.stem == chosen else rest)], config_dir)
        raw = Path(cfg.data.path)
        lake = Path(cfg.lake_dir)
        rows.append((path.stem, cfg.data.get("description", ""), _state(raw), _lake_state(lake)))
    console.print(
        rows_table("Data sources (recsys ingest data=NAME)", ["name", "description", "raw files", "lake"], rows)
    )


@app.command("synth")
@friendly_errors
def synth(overrides: Overrides = None, config_dir: ConfigDir = DEFAULT_CONFIG_DIR) -> None:
    """Generate a synthetic shop's raw logs into its source's folder (data=synth by default).

    Size, seed and behaviour are config keys (data.generator.*). Other presets:
    data=shop_clickstream (views dominating, one-day visitors, complements,
    re-targeting), data=retailrocket_synth (the same in RetailRocket's layout).

    Example: recsys datasets synth data.generator.n_events=1000000 data.generator.seed=7
    """
    from recsys_cli.config import build, compose
    from recsys_cli.console import console, kv_table, rich_progress
    from recsys_cli.errors import ConfigError

    cfg = compose("ingest", ["data=synth", *(overrides or [])], config_dir)
    source = build(cfg.data)
    if not callable(getattr(source, "generate", None)):
        raise ConfigError(f"data={cfg.data.name}: not a synthetic source (no generator); try data=synth")
    with rich_progress() as reporter:
        counts = source.generate(reporter=reporter)
    console.print(kv_table(f"Synthetic shop written to {source.path}", counts))


def _state(path: object) -> str:
    from pathlib import Path

    p = Path(str(path))
    return f"present ({p})" if p.exists() and any(p.iterdir()) else f"missing ({p})"


def _lake_state(path: object) -> str:
    from pathlib import Path

    p = Path(str(path)) / "manifest.json"
    return f"yes ({p.parent})" if p.is_file() else "no"
