"""`recsys abtest`: a simulated online experiment between two trained runs.

The period's real traffic is replayed: every logged session of the period stays
where and when it was, its user is randomised into an arm by a salted hash, and
the arm's model shows that user its top-K slate. A simulator fitted on the
history before the period (`abtest.simulator`) decides what the user does with
it. The result: per-arm metrics with intervals, lifts, power for a target lift,
a fixed-horizon or sequential decision day by day, and, as a check that needs no
simulator, off-policy estimates of both models from the period's own logs.

Where the result goes: `out`, or else `<runs root>/abtests/<timestamp>/`, beside
the runs' model folders. It is built in a temporary folder and renamed, so a
reader never sees half of it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import numpy as np
import polars as pl
from omegaconf import DictConfig, OmegaConf

from recsys_cli.abtest import AbTestError, plots, report
from recsys_cli.abtest import offpolicy as ope
from recsys_cli.abtest.assignment import ARMS, CONTROL, TREATMENT, Split, assign, sample_ratio_p
from recsys_cli.abtest.experiment import (
    RATIO_METRICS,
    compare_arms,
    compare_coverage,
    daily_looks,
    incidence,
    play,
    power_report,
    session_columns,
    user_totals,
)
from recsys_cli.abtest.logs import DAY, Logs, Period, load, period_of
from recsys_cli.abtest.sequential import Looks, SequentialResult, SequentialTest
from recsys_cli.abtest.simulator import ResponseSimulator, SessionOutcomes
from recsys_cli.console import NullReporter, Reporter
from recsys_cli.data.lake import staged_version
from recsys_cli.data.schema import EVENT_TYPES, Col
from recsys_cli.evaluation.significance import SPLIT_DIGEST, check_same_window, window_of
from recsys_cli.models.base import Recommender
from recsys_cli.registry.outputs import ABTEST, claim
from recsys_cli.registry.run_dir import CONFIG, MODEL, open_run
from recsys_cli.splits.base import TEST, VAL

ABTESTS = "abtests"
RESULT = "abtest.json"
LIFT_PLOT = "lift.png"
EFFECTS_PLOT = "effects.png"
SRM_ALPHA = 0.001  # the usual threshold for a sample ratio mismatch alarm
# Users scored per call: a (users x items) score matrix plus the int64 indices of
# its partial sort stay near 200 MB whatever the catalogue's size.
SCORE_CELLS = 1 << 24


@dataclass(frozen=True)
class Policy:
    """A run folder playing one arm."""

    label: str
    path: Path
    config: dict[str, Any]


@dataclass(frozen=True)
class Experiment:
    """Everything the simulation fixed: who is in which arm, what each arm shows,
    and what each played session did."""

    users: pl.Series  # the period's users, sorted; arrays below are indexed like it
    arm: np.ndarray
    split: Split
    slates: list[np.ndarray]  # per policy: (users, k) catalog indices
    session_user: np.ndarray  # per played session
    session_day: np.ndarray
    outcomes: SessionOutcomes


def run(
    control: Path, treatment: Path, cfg: DictConfig, out: Path | None = None, reporter: Reporter | None = None
) -> dict[str, Any]:
    """Simulate the experiment; returns the JSON-ready result, also written to the
    output folder with the plots and the config (see the module docstring)."""
    reporter = reporter or NullReporter()
    _validate(cfg.abtest)
    policies = _policies([control, treatment])
    path = out or default_out(control)
    inputs = _inputs(policies)
    claim(path, ABTEST, inputs)  # refuse a wrong --out now, not after the simulation
    period = _period(cfg.abtest.part, policies[0].config)
    result, looks, decision = simulate(policies, cfg, period, reporter)
    reporter.start("writing results and plots", total=1)
    write(path, result, cfg, looks, decision, inputs)
    reporter.advance()
    result["output"] = str(path)
    return result


def simulate(
    policies: list[Policy], cfg: DictConfig, period: Period, reporter: Reporter | None = None
) -> tuple[dict[str, Any], Looks, SequentialResult]:
    """The experiment between two policies over `period` of the first one's lake:
    the JSON-ready result, the daily looks and the decision. A policy's folder is a
    run or a package (both keep the model in `model/`); `recsys retrain` plays its
    production package against the candidate's run here."""
    reporter = reporter or NullReporter()
    settings = cfg.abtest
    _validate(settings)
    sequential: SequentialTest = _instantiate(settings.sequential, "abtest.sequential")
    simulator: ResponseSimulator = _instantiate(settings.simulator, "abtest.simulator")
    reporter.start("reading the logs", total=1)
    logs = load(Path(policies[0].config["lake_dir"]), period)
    reporter.advance()
    reporter.start("fitting the simulator", total=1)
    simulator.fit(logs)
    reporter.advance()
    experiment = _play(settings, policies, logs, simulator, int(cfg.seed), reporter)
    reporter.start("analysing", total=1)
    result, looks, decision = _analyse(settings, experiment, logs, period, sequential)
    reporter.advance()
    reporter.start("off-policy estimates", total=1)
    offpolicy = _offpolicy(settings, logs, experiment, int(cfg.seed))
    reporter.advance()
    result = report.finite(
        {
            "control": _policy_json(policies[0]),
            "treatment": _policy_json(policies[1]),
            "window": window_of(policies[0].config),
            "period": period.to_json(),
            "seed": int(cfg.seed),
            **result,
            "simulator": simulator.describe(int(settings.slate_size)),
            "offpolicy": offpolicy,
        }
    )
    result["summary"] = report.summary(result)
    return result, looks, decision


def default_out(control: Path) -> Path:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    return control.resolve().parent.parent / ABTESTS / stamp


def _instantiate(node: DictConfig, key: str) -> Any:
    """Build `node` from its `_target_`; a known error raised inside keeps its own
    one-line message instead of Hydra's wrapped traceback."""
    from hydra.errors import InstantiationException

    from recsys_cli.config import build

    try:
        return build(node)
    except InstantiationException as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise AbTestError(f"{key}: {first}") from exc


def _validate(settings: DictConfig) -> None:
    if settings.primary_metric not in RATIO_METRICS:
        raise AbTestError(f"abtest.primary_metric: {settings.primary_metric!r} is not one of {list(RATIO_METRICS)}")
    if settings.offpolicy.compare_with not in RATIO_METRICS:
        raise AbTestError(
            f"abtest.offpolicy.compare_with: {settings.offpolicy.compare_with!r} is not one of {list(RATIO_METRICS)}"
        )
    for key in ("action_events", "reward_events"):
        unknown = sorted(set(settings.offpolicy[key]) - set(EVENT_TYPES))
        if unknown or not settings.offpolicy[key]:
            raise AbTestError(f"abtest.offpolicy.{key}: unknown or empty event types {unknown}")
    if int(settings.slate_size) < 1 or int(settings.resamples) < 1:
        raise AbTestError("abtest.slate_size and abtest.resamples must be at least 1")
    if not 0 < float(settings.alpha) < 1 or not 0 < float(settings.power) < 1 or float(settings.target_lift) <= 0:
        raise AbTestError("abtest: alpha and power must lie in (0, 1) and target_lift be positive")


def _policies(paths: list[Path]) -> list[Policy]:
    """Each run's label and plain config; both must be runs of one window."""
    policies: list[Policy] = []
    for path in paths:
        if not path.is_dir():
            raise AbTestError(f"{path}: no such run folder")
        if not (path / MODEL).is_dir():
            raise AbTestError(f"{path}: no {MODEL}/ folder; run folders are written by `recsys train`")
        run = open_run(path)  # files, seal and data checked; the split's digest pairs runs
        config = cast(dict[str, Any], OmegaConf.to_container(run.config, resolve=True))
        config[SPLIT_DIGEST] = run.split_digest
        base = "/".join(path.resolve().parts[-2:])
        label = f"{base}#2" if policies and policies[0].label == base else base  # an A/A: one run twice
        policies.append(Policy(label, path, config))
    check_same_window([p.label for p in policies], [window_of(p.config) for p in policies])
    for key in ("lake_dir", "split_dir", "fold", "part"):
        if not policies[0].config.get(key):
            raise AbTestError(f"{policies[0].path / CONFIG}: no {key!r}; was this run written by `recsys train`?")
    return policies


def _period(part: str | None, config: dict[str, Any]) -> Period:
    """The chosen part (default: the runs' own), never one the models were fitted on."""
    fitted_on = str(config["part"])
    chosen = str(part or fitted_on)
    if chosen not in (VAL, TEST):
        raise AbTestError(f"abtest.part must be val or test, got {chosen!r}")
    if chosen == VAL and fitted_on == TEST:
        raise AbTestError(
            "abtest.part=val: these runs were refitted on train + validation (part=test), so they have seen "
            "the validation period; run the experiment on abtest.part=test"
        )
    return period_of(Path(config["split_dir"]), str(config["fold"]), chosen)


def _play(
    settings: DictConfig,
    policies: list[Policy],
    logs: Logs,
    simulator: ResponseSimulator,
    seed: int,
    reporter: Reporter,
) -> Experiment:
    """Randomise the period's users, compute both slates, simulate every session of
    an assigned user in time order (one seeded stream, so reruns are identical)."""
    users = logs.sessions[Col.USER].unique().sort()
    split = Split(float(settings.assignment.control), float(settings.assignment.treatment))
    arm = assign(users, str(settings.assignment.salt), split)
    if not ((arm == CONTROL).any() and (arm == TREATMENT).any()):
        raise AbTestError(f"only {users.len()} user(s) in the period and an arm is empty; use a longer period")
    k = int(settings.slate_size)
    reporter.start("recommending", total=2)
    slates = [_slates(p.path, users, k, bool(settings.exclude_seen), logs, reporter) for p in policies]
    session_user = _user_index(logs.sessions[Col.USER], users)
    played = arm[session_user] >= 0
    user, day = session_user[played], logs.sessions[DAY].to_numpy()[played].astype(np.int64)
    reporter.start("simulating sessions", total=user.size)
    outcomes = play(simulator, users, user, arm, slates, np.random.default_rng([seed, 1]), reporter.advance)
    return Experiment(users, arm, split, slates, user, day, outcomes)


def _slates(run: Path, users: pl.Series, k: int, exclude_seen: bool, logs: Logs, reporter: Reporter) -> np.ndarray:
    """The run's top-k for every user of the period, as catalog indices (-1: none)."""
    model = Recommender.load(run / MODEL)
    assert model.users is not None and model.items is not None
    index = pl.DataFrame({Col.USER: users}).select(model.users.encode(Col.USER))[Col.USER].to_numpy()
    index = index.astype(np.int64)
    batch = max(1, min(4096, SCORE_CELLS // len(model.items)))
    chunks = [model.recommend(index[i : i + batch], k, exclude_seen)[0] for i in range(0, index.size, batch)]
    top = np.concatenate(chunks) if chunks else np.zeros((0, k), np.int64)
    tokens = pl.Series(model.items.tokens, dtype=pl.String)
    slate = logs.catalog.index(tokens.gather(top.ravel())).reshape(top.shape)
    if top.shape[1] < k:  # a catalogue smaller than the slate
        slate = np.pad(slate, ((0, 0), (0, k - top.shape[1])), constant_values=-1)
    reporter.advance()
    return slate


def _user_index(ids: pl.Series, users: pl.Series) -> np.ndarray:
    """Position of each id in the sorted `users`."""
    table = pl.DataFrame({Col.USER: users}).with_row_index("_u")
    coded = pl.DataFrame({Col.USER: ids}).join(table, on=Col.USER, how="left", maintain_order="left")
    return coded["_u"].to_numpy().astype(np.int64)


def _analyse(
    settings: DictConfig, experiment: Experiment, logs: Logs, period: Period, sequential: SequentialTest
) -> tuple[dict[str, Any], Looks, SequentialResult]:
    confidence, power = 1 - float(settings.alpha), float(settings.power)
    x = experiment
    columns = session_columns(x.outcomes)
    totals = user_totals(x.session_user, columns, x.arm.size)
    comparisons = compare_arms(totals, x.arm, confidence, power)
    comparisons.append(compare_coverage(x.slates, x.arm, logs.catalog.size, confidence))
    primary = str(settings.primary_metric)
    num, den = RATIO_METRICS[primary]
    looks = daily_looks(x.session_user, x.session_day, columns[num], columns[den], x.arm, period.n_days)
    decision = sequential.analyse(looks)
    control = next(c for c in comparisons if c.metric == primary).control
    arrivals = _arrivals(x, period.n_days)
    users = [int((x.arm == a).sum()) for a in (CONTROL, TREATMENT)]
    share = float(x.split.expected()[1])
    target, alpha = float(settings.target_lift), float(settings.alpha)
    power_json = power_report(control, target, alpha, power, share, users[0], users[1], arrivals)
    result = {
        "assignment": _assignment_json(settings, x, users),
        "slate_size": int(settings.slate_size),
        "catalog_items": logs.catalog.size,
        "alpha": float(settings.alpha),
        "confidence": confidence,
        "primary_metric": primary,
        "verdict": decision.decision,
        "metrics": [c.to_json() for c in comparisons],
        "power": power_json,
        "sequential": decision.to_json(),
    }
    return result, looks, decision


def _arrivals(x: Experiment, n_days: int) -> np.ndarray:
    """Cumulative number of assigned users seen by the end of each day."""
    first = np.full(x.arm.size, n_days, dtype=np.int64)
    np.minimum.at(first, x.session_user, x.session_day)
    return np.cumsum(np.bincount(first[first < n_days], minlength=n_days))


def _assignment_json(settings: DictConfig, x: Experiment, users: list[int]) -> dict[str, Any]:
    sessions = [int((x.arm[x.session_user] == a).sum()) for a in (CONTROL, TREATMENT)]
    p = sample_ratio_p(np.array(users), x.split)
    return {
        "unit": "user",
        "salt": str(settings.assignment.salt),
        "split": {"control": x.split.control, "treatment": x.split.treatment},
        "users": dict(zip(ARMS, users, strict=True)) | {"excluded": int((x.arm < 0).sum())},
        "sessions": dict(zip(ARMS, sessions, strict=True)),
        "sample_ratio_p": p,
        "sample_ratio_mismatch": bool(p < SRM_ALPHA),
    }


def _offpolicy(settings: DictConfig, logs: Logs, x: Experiment, seed: int) -> dict[str, Any]:
    """Both runs scored on the period's logged actions, without the simulator."""
    conf = settings.offpolicy
    actions = logs.window.filter(pl.any_horizontal(list(conf.action_events)))
    if actions.height == 0:
        raise AbTestError(f"abtest.offpolicy: no {list(conf.action_events)} events in the period to reweight")
    user = _user_index(actions[Col.USER], x.users)
    item = logs.catalog.index(actions[Col.ITEM])
    reward = actions.select(pl.any_horizontal(list(conf.reward_events))).to_series().to_numpy().astype(np.float64)
    mu = ope.popularity_propensity(item, logs.catalog.size, float(conf.min_propensity))
    log = ope.LoggedActions(user, reward, mu, x.users.len())
    k = int(settings.slate_size)
    probs = [
        ope.slate_probability(np.asarray(incidence(s, logs.catalog.size)[user, item]).ravel() > 0, k) for s in x.slates
    ]
    confidence = 1 - float(settings.alpha)
    comparisons = ope.compare_policies(
        log, probs[0], probs[1], float(conf.clip), int(settings.resamples), seed + 7, confidence
    )
    return {
        "actions": int(user.size),
        "users": int(np.unique(user).size),
        "action_events": list(conf.action_events),
        "reward_events": list(conf.reward_events),
        "reward_rate": float(reward.mean()),
        "logging_policy": "item popularity among the period's actions",
        "target_policy": f"one of the slate's {k} items, uniformly",
        "clip": float(conf.clip),
        "compare_with": str(conf.compare_with),
        "matched": {arm: int((p > 0).sum()) for arm, p in zip(ARMS, probs, strict=True)},
        "estimators": [
            {
                "estimator": c.estimator,
                "control": c.control.to_json(),
                "treatment": c.treatment.to_json(),
                "lift": c.lift.to_json(),
                "verdict": report.verdict(c.lift.difference, c.lift.significant),
            }
            for c in comparisons
        ],
    }


def _inputs(policies: list[Policy]) -> list[Path]:
    """What the experiment reads, which its output folder may never overlap: both run
    folders, the lake and the split."""
    config = policies[0].config
    return [*(p.path for p in policies), Path(config["lake_dir"]), Path(config["split_dir"])]


def write(
    path: Path, result: dict[str, Any], cfg: DictConfig, looks: Looks, decision: SequentialResult, inputs: list[Path]
) -> None:
    """abtest.json, config.yaml and the plots, published together at `path` (an
    output folder of kind abtest, never overlapping `inputs`)."""
    settings = cfg.abtest
    result["files"] = {"result": RESULT, "config": CONFIG, "lift_plot": LIFT_PLOT, "effects_plot": EFFECTS_PLOT}
    result["config"] = OmegaConf.to_container(cfg, resolve=True)
    with staged_version(path, ABTEST, inputs) as tmp:
        plots.cumulative_lift(
            tmp / LIFT_PLOT,
            looks,
            decision,
            str(settings.primary_metric),
            float(settings.target_lift),
            float(settings.alpha),
        )
        plots.effects(tmp / EFFECTS_PLOT, report.effects(result), 1 - float(settings.alpha))
        OmegaConf.save(cfg, tmp / CONFIG, resolve=True)
        (tmp / RESULT).write_text(json.dumps(result, indent=2, allow_nan=False))


def _policy_json(policy: Policy) -> dict[str, Any]:
    model = policy.config.get("model", {})
    return {"label": policy.label, "path": str(policy.path.resolve()), "model": model.get("_target_")}
