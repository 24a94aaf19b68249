"""`recsys train ... warm_start={package: ...}` (tasks/train.py `warm_start_from`): a
run that begins from a package's model pins the package's manifest digest in its
saved config, records what it carried over, and is refused, in one line, when the
package changed since or the model cannot start from it. The package is the small
synthetic shop's ALS, warm started on the same shop."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from recsys_cli.cli import app
from recsys_cli.registry.integrity import SEAL
from recsys_cli.registry.package import load_package
from tests.registry.package_shop import FEATURES, SMALL, exported, shop


def train(factory: pytest.TempPathFactory, runs: Path, *overrides: str) -> tuple[int, str]:
    args = ["train", f"paths.data_dir={shop(factory)}", f"runs_dir={runs}", *FEATURES, "refit_from=none", *overrides]
    result = CliRunner().invoke(app, args, catch_exceptions=False)
    return result.exit_code, result.output


def warm_start(package: Path, **more: Any) -> str:
    fields = ",".join([f"package:'{package}'", *(f"{k}:{v}" for k, v in more.items())])
    return f"warm_start={{{fields}}}"


def runs_in(runs: Path) -> list[Path]:
    return sorted(p for p in runs.glob("*/*") if p.is_dir()) if runs.is_dir() else []


def test_a_warm_started_run_pins_the_package_and_records_what_it_carried(
    tmp_path_factory: pytest.TempPathFactory, tmp_path: Path
) -> None:
    package = exported(tmp_path_factory, "als")
    code, output = train(tmp_path_factory, tmp_path / "runs", "model=als", *SMALL["als"], warm_start(package, epochs=1))
    assert code == 0, output
    (run,) = runs_in(tmp_path / "runs")
    pinned = yaml.safe_load((run / "config.yaml").read_text())["warm_start"]
    assert pinned == {
        "package": str(package.resolve()),
        "manifest_sha256": load_package(package).manifest[SEAL],
        "epochs": 1,
    }
    metrics = json.loads((run / "metrics.json").read_text())
    carried = {k: v for k, v in metrics.items() if k.startswith("fit/warm_start/")}
    assert set(carried) == {
        f"fit/warm_start/{what}_{key}" for what in ("users", "items") for key in ("carried", "new", "dropped")
    } | {"fit/warm_start/epochs"}
    assert carried["fit/warm_start/epochs"] == 1
    # The same shop and split as the package's: every row carried over, none new or dropped.
    assert carried["fit/warm_start/users_carried"] > 0 and carried["fit/warm_start/items_carried"] > 0
    assert carried["fit/warm_start/users_new"] == carried["fit/warm_start/items_new"] == 0
    assert carried["fit/warm_start/users_dropped"] == carried["fit/warm_start/items_dropped"] == 0
    assert 0 <= metrics["val/ndcg@10"] <= 1


def test_a_package_that_changed_since_its_digest_was_pinned_is_refused(
    tmp_path_factory: pytest.TempPathFactory, tmp_path: Path
) -> None:
    """The saved config of a warm-started run names the package folder and its digest;
    a folder that holds another package by the time the run is repeated is refused."""
    from recsys_cli.config import compose
    from recsys_cli.tasks import export

    package = tmp_path / "package"
    shutil.copytree(exported(tmp_path_factory, "als"), package)
    code, output = train(tmp_path_factory, tmp_path / "runs", "model=als", *SMALL["als"], warm_start(package))
    assert code == 0, output
    (run,) = runs_in(tmp_path / "runs")
    pinned = yaml.safe_load((run / "config.yaml").read_text())["warm_start"]["manifest_sha256"]
    other = export.run(run, compose("export"), out=tmp_path / "other", push=False).path  # a valid, other package
    shutil.rmtree(package)
    shutil.copytree(other, package)

    again = tmp_path / "again"
    code, output = train(
        tmp_path_factory, again, "model=als", *SMALL["als"], warm_start(package, manifest_sha256=pinned)
    )
    assert code == 1
    now = load_package(package).manifest[SEAL]
    assert output.strip().splitlines() == [
        f"error: {package.resolve()}: warm_start.manifest_sha256 is {pinned}, the package now holds {now}; "
        "it changed since the run was configured"
    ]
    assert runs_in(again) == []


@pytest.mark.parametrize(
    ("model", "message"),
    [
        (["model=ease"], "EASE cannot warm start (its fit is closed-form and exact): fit it from scratch"),
        (
            ["model=als", "model.factors=8", "model.iterations=2"],
            "model.factors=8 but the previous ALS has 4: a warm start keeps the factor count",
        ),
    ],
    ids=["closed-form", "other-size"],
)
def test_a_model_that_cannot_start_from_the_package_is_refused_in_one_line(
    tmp_path_factory: pytest.TempPathFactory, tmp_path: Path, model: list[str], message: str
) -> None:
    code, output = train(tmp_path_factory, tmp_path / "runs", *model, warm_start(exported(tmp_path_factory, "als")))
    assert code == 1
    (line,) = output.strip().splitlines()
    assert line.startswith("error: ") and message in line
    assert runs_in(tmp_path / "runs") == []  # no half-written run is left behind
