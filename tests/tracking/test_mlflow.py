"""`logger=mlflow`: a `recsys train` run read back from a real MLflow store with
MlflowClient (params, metrics, artifacts, the Lightning models' epochs), a sweep as
a parent run with a nested run per trial, and MLflow left unimported, or refused in
one line, where it is not wanted or not installed."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import optuna
import pytest
from mlflow import MlflowClient
from typer.testing import CliRunner

from recsys_cli import tracking
from recsys_cli.cli import app
from recsys_cli.config import compose
from recsys_cli.schemas.groups import Logger
from recsys_cli.sweep.storage import default_url, open_storage
from recsys_cli.tracking import Settings, settings
from recsys_cli.tracking.names import metric_key, params

runner = CliRunner()
pytestmark = [
    pytest.mark.filterwarnings("ignore:Heartbeat of storage is supposed to be used"),
    # MLflow's SQL store on SQLAlchemy 2.1, inside MLflow itself.
    pytest.mark.filterwarnings("ignore:The ``noload`` loader strategy is deprecated"),
]


def _tracked(store: str, experiment: str) -> list[str]:
    return ["logger=mlflow", f"logger.tracking_uri={store}", f"logger.experiment_name={experiment}"]


def _runs(store: str, experiment: str) -> list[Any]:
    client = MlflowClient(store)
    found = client.get_experiment_by_name(experiment)
    assert found is not None, f"no experiment {experiment}"
    return list(client.search_runs([found.experiment_id], order_by=["attributes.start_time ASC"]))


def _train(*args: str) -> Any:
    result = runner.invoke(app, ["train", *args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result


def test_a_train_run_is_an_mlflow_run_with_its_config_metrics_and_files(
    prepared: Path, tmp_path: Path, store: str
) -> None:
    _train(f"paths.data_dir={prepared}", f"runs_dir={tmp_path / 'runs'}", "model=ease", *_tracked(store, "train"))
    (folder,) = (tmp_path / "runs" / "ease").iterdir()
    (run,) = _runs(store, "train")
    assert run.info.run_name == "ease-val" and run.info.status == "FINISHED"
    assert run.data.tags["recsys.run"] == str(folder.resolve()) and run.data.tags["recsys.model"] == "ease"

    # Params: the resolved config as the run folder holds it, flattened; not where it is reported.
    written = compose("train", [f"paths.data_dir={prepared}", "model=ease"])
    assert run.data.params["model._target_"] == written.model._target_
    assert run.data.params["model.l2"] == json.dumps(written.model.l2)
    assert run.data.params["eval.ks"] == "[10, 20]" and run.data.params["part"] == "val"
    assert run.data.params["data.name"] == "synth" and run.data.params["seed"] == "42"
    assert run.data.params["features_dir"] == str(Path(run.data.params["features_dir"]).resolve())
    assert not [k for k in run.data.params if k.startswith("logger")]

    # Metrics: metrics.json, every one, under MLflow's names.
    metrics = json.loads((folder / "metrics.json").read_text())
    assert run.data.metrics == {metric_key(k): v for k, v in metrics.items()}
    assert run.data.metrics["val/ndcg_at_10"] == metrics["val/ndcg@10"]

    # Artifacts: the small files of the run folder, byte for byte; never per_user.parquet (one row per user).
    client = MlflowClient(store)
    logged = {f.path for f in client.list_artifacts(run.info.run_id)}
    assert logged == {"metrics.json", "config.yaml", "environment.json", "selection.json"}
    for name in logged:
        copy = Path(client.download_artifacts(run.info.run_id, name, str(tmp_path)))
        assert copy.read_bytes() == (folder / name).read_bytes()
    # The store's artifacts live beside its database, not in the working directory.
    assert run.info.artifact_uri.startswith(str(Path(store.removeprefix("sqlite:///")).parent / "mlartifacts"))


def test_a_lightning_model_logs_each_epoch_through_mlflow_logger(prepared: Path, tmp_path: Path, store: str) -> None:
    args = [f"paths.data_dir={prepared}", f"runs_dir={tmp_path / 'runs'}", "model=two_tower", "trainer=smoke"]
    _train(*args, *_tracked(store, "lightning"))  # trainer=smoke: two epochs
    (run,) = _runs(store, "lightning")
    client = MlflowClient(store)
    # One point per epoch, step = epochs trained (as best_epoch counts them).
    for key in ("epochs/train/loss", "epochs/val/ndcg_at_10"):
        assert [m.step for m in client.get_metric_history(run.info.run_id, key)] == [1, 2], key
    curve = {m.step: m.value for m in client.get_metric_history(run.info.run_id, "epochs/val/ndcg_at_10")}
    best = int(run.data.metrics["best_epoch"])
    assert curve[best] == max(curve.values())
    # The run ends once its metrics and files are in, not when Lightning's fit ends.
    assert run.info.status == "FINISHED" and "val/ndcg_at_10" in run.data.metrics
    assert "metrics.json" in {f.path for f in client.list_artifacts(run.info.run_id)}

    # Where a run is reported is not what was fitted: the refit finds this validation run.
    refit = _train(*args, "part=test")
    assert "refit with" in refit.output and "as chosen by" in refit.output


def _sweep(prepared: Path, tmp_path: Path, store: str, trials: int) -> None:
    args = [f"paths.data_dir={prepared}", f"sweeps_dir={tmp_path / 'sweeps'}", "model=bpr_mf", "sweep=tiny"]
    args += ["trainer=smoke", *_tracked(store, "sweep"), "--trials", str(trials)]
    result = runner.invoke(app, ["sweep", *args], catch_exceptions=False)
    assert result.exit_code == 0, result.output


def test_a_sweep_is_a_parent_run_with_a_nested_run_per_trial(prepared: Path, tmp_path: Path, store: str) -> None:
    _sweep(prepared, tmp_path, store, trials=2)
    runs = _runs(store, "sweep")
    (parent,) = [r for r in runs if r.data.tags.get("recsys.kind") == "study"]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert len(runs) == 3 and [r.info.run_name for r in children] == ["trial-0", "trial-1"]
    assert parent.info.run_name == "synth-tiny" and parent.info.status == "FINISHED"
    assert json.loads(parent.data.params["sweep.metrics"]) == ["val/ndcg@10"]

    storage = open_storage(default_url(tmp_path / "sweeps" / "synth-tiny"))
    study = optuna.load_study(study_name="synth-tiny", storage=storage)
    for child, trial in zip(children, sorted(study.trials, key=lambda t: t.number), strict=True):
        assert child.info.status == "FINISHED" and child.data.tags["recsys.outcome"] == "complete"
        assert child.data.tags["recsys.trial"] == str(trial.number)
        assert child.data.metrics["trial/value"] == trial.value
        assert child.data.params["model.lr"] == json.dumps(trial.params["model.lr"])
        assert child.data.params["model.dim"] == json.dumps(trial.params["model.dim"])
        assert "epochs/val/ndcg_at_10" in child.data.metrics and "config.yaml" in {
            f.path for f in MlflowClient(store).list_artifacts(child.info.run_id)
        }
    assert parent.data.metrics["best/val/ndcg_at_10"] == study.best_value
    assert parent.data.tags["recsys.trial.best"] == str(study.best_trial.number)
    assert {"best.json", "trials.json"} <= {f.path for f in MlflowClient(store).list_artifacts(parent.info.run_id)}

    # A resumed study goes on under the same parent run.
    _sweep(prepared, tmp_path, store, trials=3)
    again = _runs(store, "sweep")
    assert len(again) == 4 and [r for r in again if r.data.tags.get("recsys.kind") == "study"] == [
        r for r in again if r.info.run_id == parent.info.run_id
    ]
    assert sum(r.data.tags.get("mlflow.parentRunId") == parent.info.run_id for r in again) == 3


def test_train_without_the_logger_never_imports_mlflow(prepared: Path, tmp_path: Path) -> None:
    code = (
        "import sys\n"
        "from typer.testing import CliRunner\n"
        "from recsys_cli.cli import app\n"
        f"args = ['train', 'paths.data_dir={prepared}', 'runs_dir={tmp_path / 'runs'}', 'model=popularity']\n"
        "result = CliRunner().invoke(app, args)\n"
        "assert result.exit_code == 0, result.output\n"
        "print('mlflow' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "False"


def test_logger_mlflow_without_mlflow_installed_is_one_line(
    prepared: Path, tmp_path: Path, store: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "mlflow", None)  # `import mlflow` raises ImportError
    args = [f"paths.data_dir={prepared}", f"runs_dir={tmp_path / 'runs'}", *_tracked(store, "missing")]
    result = runner.invoke(app, ["train", *args])
    assert result.exit_code == 1
    assert "logger=mlflow needs MLflow, which is not installed: pip install '.[mlflow]'" in result.output
    assert "Traceback" not in result.output and not (tmp_path / "runs" / "popularity").exists()


def test_a_local_store_is_found_from_any_working_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    found = settings(compose("train", ["logger=mlflow"]))
    assert found == Settings(
        tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}",
        experiment_name="synth",
        artifact_location=str(tmp_path / "mlartifacts"),
    )
    server = settings(compose("train", ["logger=mlflow", "logger.tracking_uri=http://mlflow.internal:5000"]))
    assert server is not None and server.artifact_location is None  # the server decides
    assert settings(compose("train", [])) is None


def test_the_logger_schema_names_the_settings_keys() -> None:
    assert set(Logger.model_fields) - {"name"} == set(Settings.__dataclass_fields__)


def test_config_params_read_like_the_yaml_they_come_from() -> None:
    flat = params({"model": {"lr": 0.001, "dims": [8, 16], "seen": None, "on": True}, "logger": {"x": "y"}})
    assert flat == {"model.lr": "0.001", "model.dims": "[8, 16]", "model.seen": "null", "model.on": "true"}
    assert metric_key("val/ndcg@10") == "val/ndcg_at_10" and metric_key("fit/a+b") == "fit/a_b"


def test_a_run_that_raises_ends_failed_and_a_pruned_trial_killed(tmp_path: Path, store: str) -> None:
    cfg = compose("train", [f"paths.data_dir={tmp_path}", *_tracked(store, "outcomes")])
    with pytest.raises(ValueError), tracking.train_run(cfg, "popularity", lightning=False):
        raise ValueError("out of memory")
    for error in (optuna.TrialPruned(), ValueError("nan loss"), KeyboardInterrupt()):
        with pytest.raises(type(error)), tracking.trial_run(cfg, "study", 7, None) as trial:
            with tracking.train_run(cfg, "popularity", lightning=False):  # writes into the trial's run
                trial.value({"val/ndcg@10": 0.5})
                raise error
    runs = _runs(store, "outcomes")
    assert [(r.info.run_name, r.info.status, r.data.tags.get("recsys.outcome")) for r in runs] == [
        ("popularity-val", "FAILED", None),
        ("trial-7", "KILLED", "pruned"),
        ("trial-7", "FAILED", "failed"),
        ("trial-7", "KILLED", "interrupted"),
    ]
    assert all(r.data.params["data.name"] == "synth" for r in runs)
