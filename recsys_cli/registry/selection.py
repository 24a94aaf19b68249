"""What a validation run chose, so that the refit on train + validation repeats it.

`recsys train part=val` writes `selection.json` into its run folder:

    {"best_epoch": 12, "params": {"l2": 100.0}}

- `best_epoch`: the epochs trained up to the best validation checkpoint, for models
  that early-stop on the validation window (`chooses_on_validation` and a Lightning
  trainer: the neural models of `models/lightning.py`). The refit has no validation
  to stop on, so it trains exactly that long (`trainer.max_epochs`). Models that
  stop on held-out users of their own inside every fit (the two-stage ranker: its
  DCN epochs or LightGBM trees, recorded as `best_epoch` in metrics.json) repeat that
  choice in the refit by themselves: their count is never pinned. null otherwise.
- `params`: `Recommender.selected`, settings a model chose on the validation window
  itself, as config keys under `model.` (`{"l2": 100.0}` pins `model.l2=100.0`).

`recsys train part=test` finds the matching validation run (`find_source`), pins
both into its config before fitting, and writes the same file into its own run
with `"from": {"run": ..., "manifest_sha256": ...}`: what it was refitted with and
which sealed run chose it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from omegaconf import DictConfig, OmegaConf, open_dict

from recsys_cli.errors import ConfigError, IntegrityError
from recsys_cli.registry.integrity import MANIFEST, sha256_file
from recsys_cli.registry.run_dir import CONFIG, METRICS, RETRAIN, Run, find_run, open_run

if TYPE_CHECKING:
    from recsys_cli.models.base import Recommender

SELECTION = "selection.json"
VAL = "val"
# Keys that say where things are, how a run is scored or where it is reported (logger),
# not what is fitted: a validation run matches a refit whatever they hold. The data
# folders themselves (lake_dir, split_dir, features_dir: absolute) and their digests must match.
VOLATILE = ("part", "runs_dir", "refit_from", "paths", "eval", "logger")
# Trainer keys a refit may change: the epochs are what the selection pins, and a
# progress bar changes nothing that is fitted.
TRAINER_VOLATILE = ("max_epochs", "enable_progress_bar")


@dataclass(frozen=True)
class Selection:
    """Settings chosen on validation; `source` names the run that chose them."""

    best_epoch: int | None = None
    params: dict[str, Any] = field(default_factory=dict)
    source: dict[str, str] | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"best_epoch": self.best_epoch, "params": self.params}
        return out | ({"from": self.source} if self.source else {})

    def describe(self) -> str:
        """`trainer.max_epochs=12, model.l2=100.0`, or `nothing`."""
        pins = [f"trainer.max_epochs={self.best_epoch}"] if self.best_epoch is not None else []
        return ", ".join(pins + [f"model.{k}={v}" for k, v in self.params.items()]) or "nothing"


def chooses_on_validation(model: Recommender) -> bool:
    """Whether a model's fit on train chooses settings on the validation window that
    a refit without that window must repeat (`Recommender.chooses_on_validation`:
    the neural models of models/lightning.py, and a closed-form model whose
    on-validation grid of models/selection.py is set)."""
    return model.chooses_on_validation


def pins_epochs(model: Recommender) -> bool:
    """Best epoch is a refit setting only for models that early-stop on the
    validation window through the shared Lightning loop."""
    return chooses_on_validation(model) and model.lightning_trainer() is not None


def chosen(model: Any) -> Selection:
    """What a fit on train with the validation window chose (written by part=val)."""
    best = getattr(model, "best_epoch", None) if pins_epochs(model) else None
    return Selection(int(best) if best is not None else None, dict(getattr(model, "selected", None) or {}))


def write(folder: Path, selection: Selection) -> None:
    (folder / SELECTION).write_text(json.dumps(selection.to_json(), indent=2) + "\n")


def read(run: Run, model: Any) -> Selection:
    """The selection a verified validation run recorded, with `source` set to it.
    A run from before selection.json pins the best_epoch of its metrics.json."""
    path = run.path / SELECTION
    if path.is_file():
        data = json.loads(path.read_text())
    else:
        metrics = json.loads((run.path / METRICS).read_text())
        data = {"best_epoch": metrics.get("best_epoch"), "params": {}}
    if not isinstance(data, dict):
        raise IntegrityError(f"{path}: not a JSON object; {RETRAIN}")
    best, params = data.get("best_epoch"), data.get("params", {})
    if not (best is None or (isinstance(best, int | float) and best >= 1)) or not isinstance(params, dict):
        raise IntegrityError(f"{path}: best_epoch must be a whole number >= 1 or null, params a mapping; {RETRAIN}")
    source = {"run": str(run.path.resolve()), "manifest_sha256": sha256_file(run.path / MANIFEST)}
    return Selection(int(best) if best is not None and pins_epochs(model) else None, dict(params), source)


def apply(cfg: DictConfig, selection: Selection) -> DictConfig:
    """`cfg` with the selection pinned: trainer.max_epochs (also the model's copy of
    the trainer) and each chosen `model.<key>`."""
    out = OmegaConf.create(OmegaConf.to_container(cfg, resolve=True))
    assert isinstance(out, DictConfig)
    with open_dict(out):
        if selection.best_epoch is not None:
            out.trainer.max_epochs = selection.best_epoch
            if isinstance(out.model.get("trainer"), DictConfig):
                out.model.trainer.max_epochs = selection.best_epoch
        for key, value in selection.params.items():
            OmegaConf.update(out, f"model.{key}", value, merge=False, force_add=True)
    return out


def comparable(cfg: DictConfig, params: dict[str, Any] | None = None) -> dict[str, Any]:
    """The part of a train config that decides what is fitted: everything but the
    volatile keys, the trainer's epochs and the model keys a selection pins."""
    out = cast(dict[str, Any], OmegaConf.to_container(cfg, resolve=True))
    for key in VOLATILE:
        out.pop(key, None)
    model: dict[str, Any] = out["model"] if isinstance(out.get("model"), dict) else {}
    for trainer in (out.get("trainer"), model.get("trainer")):
        if isinstance(trainer, dict):
            for key in TRAINER_VOLATILE:
                trainer.pop(key, None)
    for key in params or {}:
        *parents, leaf = str(key).split(".")
        node: Any = model
        for name in parents:
            node = node.get(name) if isinstance(node, dict) else None
        if isinstance(node, dict):
            node.pop(leaf, None)
    return out


def difference(a: dict[str, Any], b: dict[str, Any], prefix: str = "") -> str | None:
    """The first dotted key whose value differs between two plain configs."""
    for key in sorted(set(a) | set(b), key=str):
        dotted = f"{prefix}{key}"
        x, y = a.get(key, "<absent>"), b.get(key, "<absent>")
        if isinstance(x, dict) and isinstance(y, dict):
            found = difference(x, y, f"{dotted}.")
            if found:
                return found
        elif x != y:
            return dotted
    return None


def find_source(cfg: DictConfig, name: str) -> Run | None:
    """The newest sealed part=val run in `runs_dir/<name>/` whose config equals
    `cfg` but for its part, volatile keys and the keys its selection pins; verified
    (`open_run`: seal, files, data digests) before it is returned."""
    mine = comparable(cfg)

    def matches(run: Path, other: DictConfig) -> bool:
        if other.get("part") != VAL:
            return False
        params = _params(run)
        return comparable(other, params) == _without(mine, params)

    found = find_run(cfg.runs_dir, name, matches)
    return open_run(found) if found is not None else None


def named_source(cfg: DictConfig, path: Path, name: str) -> Run:
    """`refit_from=<run>`: that run, verified, a part=val run of the same model on the
    same data and settings (one line naming the first key that differs otherwise)."""
    run = open_run(path)
    if run.config.get("part") != VAL:
        raise ConfigError(f"refit_from={path}: not a part=val run (part={run.config.get('part')})")
    if run.path.parent.name != name:
        raise ConfigError(f"refit_from={path}: a run of {run.path.parent.name}, not of {name}")
    params = _params(run.path)
    differs = difference(comparable(run.config, params), _without(comparable(cfg), params))
    if differs:
        raise ConfigError(f"refit_from={path}: its {differs} differs from this run's; it chose for another config")
    return run


def nearest_difference(cfg: DictConfig, name: str) -> str | None:
    """Why the newest part=val run of the model did not match (its first differing
    key), for the refusal message; None when there is none."""
    latest = find_run(cfg.runs_dir, name, lambda _, other: other.get("part") == VAL)
    if latest is None:
        return None
    other = OmegaConf.load(latest / CONFIG)
    assert isinstance(other, DictConfig)
    params = _params(latest)
    return difference(comparable(other, params), _without(comparable(cfg), params))


def _params(run: Path) -> dict[str, Any]:
    """The params a run's selection.json pins ({} when unreadable: open_run judges it)."""
    try:
        data = json.loads((run / SELECTION).read_text())
    except (OSError, ValueError):
        return {}
    params = data.get("params") if isinstance(data, dict) else None
    return params if isinstance(params, dict) else {}


def _without(plain: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
    """`plain` (from `comparable`) less the model keys `params` pins."""
    return comparable(OmegaConf.create(plain), params) if params else plain
