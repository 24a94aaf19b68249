"""One tiny synthetic shop, trained once per test process with every model in
conf/model/, for the package and export tests (tests/registry/test_package.py,
tests/cli/test_export_cli.py): built by whichever asks first, then shared.

Each model is fitted with the smallest settings that still exercise all of its
state (one epoch and tiny widths for the neural ones, two labelled windows and a
few trees for the rankers), so the whole set trains in seconds on one core."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from recsys_cli.cli import app
from recsys_cli.config import DEFAULT_CONF_DIR, compose

MODELS = sorted(p.stem for p in (DEFAULT_CONF_DIR / "model").glob("*.yaml"))
GENERATORS = ["model.generators.als.factors=4", "model.generators.als.iterations=2"]
SMALL = {
    "als": ["model.factors=4", "model.iterations=2"],
    "implicit_bpr": ["model.factors=4", "model.iterations=2"],
    "bpr_mf": ["model.dim=8"],
    "two_tower": ["model.dim=8"],
    "sasrec": ["model.dim=8", "model.heads=1", "model.layers=1", "model.max_len=8"],
    "ranker": [*GENERATORS, "model.hidden=[8]", "model.embedding_dim=4"],
    "ranker_lgbm": [*GENERATORS, "model.lightgbm.n_estimators=10"],
    "ranker_lgbm_ensemble": [*GENERATORS, "model.lightgbm.n_estimators=10", "model.lightgbm_cv_folds=2"],
}
# The features every model trains on: the default ones plus two labelled windows for the rankers.
FEATURES = ["features=ranker", "features.ranker_windows=2"]
RAW_USER_PREFIX = "C0"  # the synthetic shop's raw customer ids (C0000194), pseudonymised by ingest

_built: dict[str, Path] = {}


def shop(factory: pytest.TempPathFactory) -> Path:
    """The data folder of a small shop, ingested, split and featured."""
    if "shop" not in _built:
        root = factory.mktemp("package_shop")
        runner = CliRunner()
        for args in (
            ["datasets", "synth", "data.generator.n_events=4000", "data.generator.n_days=90"],
            ["ingest"],
            ["split"],
            ["features", *FEATURES],
        ):
            result = runner.invoke(app, [*args, f"paths.data_dir={root}"], catch_exceptions=False)
            assert result.exit_code == 0, result.output
        _built["shop"] = root
    return _built["shop"]


def trained(factory: pytest.TempPathFactory, name: str) -> Path:
    """The run folder of model `name` fitted on `shop` (once per process)."""
    key = f"run:{name}"
    if key not in _built:
        from recsys_cli.tasks import train

        root = shop(factory)
        overrides = [f"paths.data_dir={root}", f"runs_dir={root / 'runs' / name}", f"model={name}", *FEATURES]
        overrides += ["trainer=smoke", "trainer.max_epochs=1", "refit_from=none", *SMALL.get(name, [])]
        _built[key] = train.run(compose("train", overrides)).run
    return _built[key]


def exported(factory: pytest.TempPathFactory, name: str) -> Path:
    """The package of `trained(name)`, exported once per process without a push:
    read-only for its users (a test that damages one works on a copy)."""
    key = f"package:{name}"
    if key not in _built:
        from recsys_cli.tasks import export

        out = factory.mktemp(f"package_{name}") / "package"
        _built[key] = export.run(trained(factory, name), compose("export"), out=out, push=False).path
    return _built[key]
