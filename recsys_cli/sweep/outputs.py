"""What a sweep leaves in its folder: the trials as JSON, the best parameters as
a Hydra override file and as a `conf/experiment/` preset, and Optuna's plots.
Every file is written under a temporary name and renamed, so a crash never leaves
half a file."""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from recsys_cli.errors import ConfigError
from recsys_cli.sweep.study import COMPLETE, outcome, records

TRIALS_JSON = "trials.json"
BEST_JSON = "best.json"
BEST_OVERRIDES = "best_overrides.txt"
EXPERIMENT = "experiment.yaml"
PLOTS_DIR = "plots"


def write_atomic(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    tmp.replace(path)
    return path


def write_trials(study: Any, folder: Path) -> Path:
    rows = [r.to_json() for r in records(study.get_trials(deepcopy=False))]
    return write_atomic(folder / TRIALS_JSON, json.dumps(rows, indent=1, default=str))


def write_best(overrides: Sequence[str], header: str, conf_dir: Path, folder: Path) -> dict[str, Path]:
    """The override file (one Hydra override a line: `recsys train $(cat FILE)`)
    and the experiment preset of the same run."""
    return {
        "best_overrides": write_atomic(folder / BEST_OVERRIDES, "".join(f"{o}\n" for o in overrides)),
        "experiment": write_atomic(folder / EXPERIMENT, experiment_preset(overrides, conf_dir, header)),
    }


def experiment_preset(overrides: Sequence[str], conf_dir: Path, header: str) -> str:
    """A `conf/experiment/` preset equivalent to `overrides`: group choices become
    `override /group: option` defaults, values a nested global config. Copied to
    conf/experiment/NAME.yaml, `recsys train experiment=NAME` composes the same
    config as `recsys train OVERRIDES`."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from omegaconf import OmegaConf

    defaults: list[Any] = []
    values: dict[str, Any] = {}
    for o in OverridesParser.create().parse_overrides(list(overrides)):
        key = o.key_or_group
        if o.is_delete():
            raise ConfigError(f"{o.input_line}: a deletion cannot be written into an experiment preset")
        if (conf_dir / key).is_dir():
            defaults.append({f"override /{key}" if not o.is_add() else f"/{key}": o.value()})
        else:
            _set(values, key.split("."), o.value())
    body = OmegaConf.to_yaml(OmegaConf.create({"defaults": [*defaults, "_self_"], **values}))
    lines = ["# @package _global_", *(f"# {line}".rstrip() for line in header.splitlines())]
    return "\n".join(lines) + "\n" + body


def _set(tree: dict[str, Any], path: list[str], value: Any) -> None:
    for part in path[:-1]:
        node = tree.setdefault(part, {})
        if not isinstance(node, dict):  # a value was set on the parent earlier: the deeper key refines it
            node = tree[part] = {}
        tree = node
    tree[path[-1]] = value


def write_plots(study: Any, metrics: Sequence[str], folder: Path) -> tuple[dict[str, Path], dict[str, str]]:
    """Optimisation history, parameter importances, parallel coordinates, learning
    curves (pruned trials end early on them) and, with several objectives, the
    Pareto front, as PNG. Returns the files and, for plots not drawn, why."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import optuna

    complete = [t for t in study.get_trials(deepcopy=False) if outcome(t) == COMPLETE]
    written, skipped = {}, {}
    for name, (reason, draw) in _plots(study, metrics, complete).items():
        if reason:
            skipped[name] = reason
            continue
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                warnings.simplefilter("ignore", UserWarning)  # e.g. a flat axis when every trial chose one value
                figure = _figure(draw())
            path = folder / f"{name}.png"
            folder.mkdir(parents=True, exist_ok=True)
            tmp = folder / f".{name}.tmp.png"
            figure.savefig(tmp, dpi=120, bbox_inches="tight")
            tmp.replace(path)
            written[name] = path
        except Exception as exc:  # a plot Optuna cannot draw for this study is reported, not fatal
            skipped[name] = f"{type(exc).__name__}: {exc}"
        finally:
            plt.close("all")
    return written, skipped


def _plots(study: Any, metrics: Sequence[str], complete: Sequence[Any]) -> dict[str, tuple[str, Callable[[], Any]]]:
    from optuna.importance import FanovaImportanceEvaluator
    from optuna.visualization import matplotlib as vis

    multi = len(metrics) > 1
    target = (lambda t: t.values[0]) if multi else None
    name = metrics[0]
    varied = {k for t in complete for k in t.params if len({str(u.params.get(k)) for u in complete}) > 1}
    curves = any(t.intermediate_values for t in study.get_trials(deepcopy=False))
    plots: dict[str, tuple[str, Callable[[], Any]]] = {
        "optimization_history": (
            "" if complete else "no completed trial",
            lambda: vis.plot_optimization_history(study, target=target, target_name=name),
        ),
        "param_importances": (
            "" if len(complete) >= 2 and varied else "needs two completed trials with different parameters",
            lambda: vis.plot_param_importances(
                study, target=target, target_name=name, evaluator=FanovaImportanceEvaluator(seed=0)
            ),
        ),
        "parallel_coordinate": (
            "" if complete else "no completed trial",
            lambda: vis.plot_parallel_coordinate(study, target=target, target_name=name),
        ),
        "intermediate_values": (
            "" if curves and not multi else "no per-epoch values (a closed-form model, or several objectives)",
            lambda: vis.plot_intermediate_values(study),
        ),
    }
    if multi:
        plots["pareto_front"] = (
            "" if complete and len(metrics) <= 3 else "needs a completed trial and at most three objectives",
            lambda: vis.plot_pareto_front(study, target_names=list(metrics)),
        )
    return plots


def _figure(drawn: Any) -> Any:
    """The figure behind what an Optuna plot returns (axes, or an array of axes)."""
    if hasattr(drawn, "figure"):
        return drawn.figure
    return drawn.flat[0].figure
