"""Every composed config is validated against its schema (recsys_cli/schemas/):
each shipped config and every option of every group passes, a bad value of any
group is one line naming the key, the value and the rule, and the schemas name
the same keys as the classes and dataclasses that consume them."""

from __future__ import annotations

import inspect
import typing
from dataclasses import fields
from pathlib import Path

import pytest

from recsys_cli.config import DEFAULT_CONF_DIR, compose
from recsys_cli.errors import ConfigError
from recsys_cli.schemas import PRIMARY, groups, models
from recsys_cli.schemas import abtest as abtest_schema
from recsys_cli.schemas._base import Schema
from tests.retraining.test_retrain_schema import RETRAIN_BAD

CONF = DEFAULT_CONF_DIR
EXPERIMENTS = sorted((CONF.parent / "experiments").glob("*.yaml"))


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


def group_folders() -> set[str]:
    return {str(p.parent.relative_to(CONF)) for p in CONF.rglob("*.yaml") if p.parent != CONF}


def sweep_model(sweep: str) -> str:
    """The model a conf/sweep/ preset searches (its own name, or BPR-MF for tiny)."""
    return sweep if (CONF / "model" / f"{sweep}.yaml").is_file() else "bpr_mf"


# Group folder -> the primary configs that compose it, and overrides the option needs.
GROUPS: dict[str, list[tuple[str, list[str]]]] = {
    "paths": [(p, []) for p in ("ingest", "split", "features", "train")],
    "data": [(p, []) for p in ("ingest", "split", "features", "train")],
    "pii": [("ingest", [])],
    "engine": [(p, []) for p in ("ingest", "split", "features")],
    "split": [(p, []) for p in ("split", "features", "train")],
    "target": [(p, []) for p in ("split", "features", "train")],
    "features": [("features", []), ("train", [])],
    "model": [("train", [])],
    "trainer": [("train", [])],
    "logger": [("train", []), ("sweep", ["model=bpr_mf", "sweep=tiny"])],
    "experiment": [("train", [])],
    "eval": [("evaluate", [])],
    "registry": [("registry", []), ("export", [])],
    "sweep": [("sweep", [])],
    "sweep/sampler": [("sweep", ["model=bpr_mf", "sweep=tiny"])],
    "sweep/pruner": [("sweep", ["model=bpr_mf", "sweep=tiny"])],
    "abtest/simulator": [("abtest", [])],
    "abtest/sequential": [("abtest", [])],
    "abtest/funnel": [("abtest", [])],
    "ann": [("export", [])],
    "serve": [("serve", [])],
    "serve/rules": [("serve", [])],
    "monitor": [("monitor", [])],
    "retrain": [("retrain", [])],
}


def option_cases() -> list[tuple[str, list[str]]]:
    # conf/sweep.yaml picks conf/sweep/<model>.yaml: the default model has none.
    cases: list[tuple[str, list[str]]] = [(n, ["model=bpr_mf", "sweep=tiny"] if n == "sweep" else []) for n in PRIMARY]
    for group, uses in GROUPS.items():
        for primary, base in uses:
            for option in options(group):
                if group == "sweep":
                    cases.append((primary, [*base, f"model={sweep_model(option)}", f"sweep={option}"]))
                elif group == "abtest/funnel":
                    cases.append((primary, [*base, f"abtest/funnel@abtest.simulator.funnel={option}"]))
                else:
                    cases.append((primary, [*base, f"{group}={option}"]))
    return cases


def test_every_primary_config_and_group_folder_is_covered() -> None:
    assert {p.stem for p in CONF.glob("*.yaml")} == set(PRIMARY)
    assert group_folders() == set(GROUPS)


@pytest.mark.parametrize(
    ("primary", "overrides"), option_cases(), ids=lambda v: " ".join(v) if isinstance(v, list) else v
)
def test_every_shipped_config_and_option_validates(primary: str, overrides: list[str]) -> None:
    compose(primary, overrides)


@pytest.mark.parametrize("sweep", options("sweep"))
def test_every_value_a_shipped_search_space_can_draw_validates(sweep: str) -> None:
    from omegaconf import OmegaConf

    from recsys_cli.sweep.search_space import SearchSpace, to_override

    base = [f"model={sweep_model(sweep)}"]
    cfg = compose("sweep", [*base, f"sweep={sweep}"])
    space = SearchSpace.from_config(OmegaConf.to_container(cfg.sweep.params))  # type: ignore[arg-type]
    for params in space.probes():
        compose("train", [*base, *cfg.sweep.fixed, *(to_override(k, v) for k, v in params.items())])


@pytest.mark.parametrize("path", EXPERIMENTS, ids=lambda p: p.stem)
def test_every_experiment_file_composes_and_validates(path: Path, tmp_path: Path) -> None:
    from recsys_cli.experiments import load_experiment
    from recsys_cli.tasks.reproduce import base_overrides, compose_experiment

    experiment = load_experiment(path)
    compose_experiment(experiment, base_overrides(experiment, tmp_path), CONF)


def test_a_new_model_yaml_without_a_schema_fails(tmp_path: Path) -> None:
    import shutil

    conf = tmp_path / "conf"
    shutil.copytree(CONF, conf)
    (conf / "model" / "mine.yaml").write_text("_target_: my_package.Mine\nsize: 3\n")
    with pytest.raises(ConfigError, match=r"model._target_ = 'my_package.Mine': must name a model: Popularity, "):
        compose("train", ["model=mine"], conf)


# ----------------------------------------------------------------------------- bad values

BAD = [
    # engine (conf/engine/)
    ("ingest", ["engine=spark", "engine.master=localhost"], "engine.master = 'localhost': must be a Spark master"),
    ("split", ["engine=spark", "engine.master=null"], "engine.master = null: engine=spark needs a master"),
    ("features", ["engine=spark", "engine.rows_per_task=10"], "engine.rows_per_task = 10: must be >= 1000"),
    ("ingest", ["+engine.master=yarn"], "engine.master = 'yarn': is a Spark setting"),
    # primary keys
    ("train", ["seed=abc"], "seed = 'abc': must be an integer"),
    ("train", ["seed=-1"], "seed = -1: must be >= 0"),
    ("train", ["fold=../x"], "fold = '../x': must name a fold"),
    ("train", ["part=train"], "part = 'train': must be one of 'val', 'test' or 'val+test'"),
    ("sweep", ["model=bpr_mf", "sweep=tiny", "part=val+test"], "part = 'val+test': must be one of 'val' or 'test'"),
    ("train", ["eval.ks=[0]"], "eval.ks[0] = 0: must be >= 1"),
    ("train", ["eval.ks=[]"], "eval.ks = []: must hold at least 1 item(s)"),
    ("train", ["eval.batch_users=0"], "eval.batch_users = 0: must be >= 1"),
    ("train", ["+extra=1"], "extra = 1: unknown key"),
    ("evaluate", ["batch_users=-5"], "batch_users = -5: must be >= 1"),
    ("evaluate", ["part=train"], "part = 'train': must be one of"),
    ("sweep", ["model=bpr_mf", "sweep=tiny", "sweeps_dir=null"], "sweeps_dir = null: must be text"),
    # paths, data, pii, ingest rules
    ("ingest", ["paths.data_dir=''"], "paths.data_dir = '': must not be empty"),
    ("ingest", ["data.name=a/b"], "data.name = 'a/b': must start with a letter or digit"),
    ("ingest", ["data.generator.n_events=0"], "data.generator.n_events = 0: must be >= 1"),
    ("ingest", ["data.generator.n_days=-3"], "data.generator.n_days = -3: must be >= 1"),
    ("ingest", ["data.generator.start=2026-13-01"], "data.generator.start = '2026-13-01': must be an ISO date"),
    ("ingest", ["+data.generator.n_clusters=0"], "data.generator.n_clusters = 0: must be >= 1"),
    ("ingest", ["data.generator.n_events=100000000000000"], "n_events = 100000000000000: must be <= 10000000000"),
    ("ingest", ["data.generator.n_events=10.5"], "data.generator.n_events = 10.5: must be a whole number"),
    ("ingest", ["data.generator.seed=-1"], "data.generator.seed = -1: must be >= 0"),
    ("ingest", ["+data.generator.drift=1.5"], "data.generator.drift = 1.5: must be <= 1"),
    ("ingest", ["+data.generator.colour=red"], "data.generator.colour = 'red': unknown key; known: n_events"),
    ("ingest", ["data=generic", "data.events.format=xlsx"], "data.events.format = 'xlsx': must be one of"),
    ("ingest", ["data=generic", "data.events.separator=';;'"], "data.events.separator = ';;'"),
    ("ingest", ["data=generic", "data.events.files=[]"], "data.events.files = []: must hold at least 1"),
    ("ingest", ["data=generic", "data.events.event_types={buy: order}"], "data.events.event_types.buy = 'order'"),
    ("ingest", ["data._target_=os.system"], "data._target_ = 'os.system': must name a data source"),
    ("ingest", ["pii.min_key_length=4"], "pii.min_key_length = 4: must be >= 16"),
    ("ingest", ["+pii.personal_columns.email=keep"], "pii.personal_columns.email = 'keep': must be one of"),
    ("ingest", ["validation.max_bad_fraction=1.5"], "validation.max_bad_fraction = 1.5: must be <= 1"),
    ("ingest", ["validation.min_ts=yesterday"], "validation.min_ts = 'yesterday': must be an ISO 8601 time"),
    ("ingest", ["validation.window_rows=0"], "validation.window_rows = 0: must be >= 1"),
    ("ingest", ["validation.max_future_days=nan"], "validation.max_future_days = nan: must be a finite number"),
    # split
    ("split", ["split.val_fraction=-0.1"], "split.val_fraction = -0.1: must be >= 0"),
    ("split", ["split.test_fraction=0"], "split.test_fraction = 0: must be > 0"),
    ("split", ["split.val_fraction=0.6", "split.test_fraction=0.5"], "split.test_fraction = 0.5: must be below 1 -"),
    ("split", ["split.val_cutoff=soon"], "split.val_cutoff = 'soon': must be an ISO 8601 time"),
    (
        "split",
        ["split.val_cutoff=2026-03-01", "split.test_cutoff=2026-02-01"],
        "split.val_cutoff = '2026-03-01': must not be after test_cutoff",
    ),
    ("split", ["split=leave_last_n", "split.n=0"], "split.n = 0: must be >= 1"),
    ("split", ["split=leave_last_n", "split.val_n=-1"], "split.val_n = -1: must be >= 0"),
    ("split", ["split=rolling_origin", "split.n_folds=0"], "split.n_folds = 0: must be >= 1"),
    ("split", ["split=rolling_origin", "split.test_days=0"], "split.test_days = 0: must be > 0"),
    ("split", ["split=rolling_origin", "split.train_days=-1"], "split.train_days = -1: must be > 0"),
    ("split", ["split.name=x/y"], "split.name = 'x/y': must start with a letter or digit"),
    # target
    ("split", ["target.positive_events=[]"], "target.positive_events = []: must hold at least 1"),
    ("split", ["target.positive_events=[wishlist]"], "target.positive_events[0] = 'wishlist': must be one of"),
    ("split", ["target.exclude_seen=maybe"], "target.exclude_seen = 'maybe': must be true or false"),
    # features
    ("features", ["features.max_len=0"], "features.max_len = 0: must be >= 1"),
    ("features", ["features.half_life_days=0"], "features.half_life_days = 0: must be > 0"),
    ("features", ["features.dedup=mean"], "features.dedup = 'mean': must be one of"),
    ("features", ["features.weights.view=-1"], "features.weights.view = -1: must be a number >= 0 or 'value'"),
    ("features", ["features.windows_days=[7,-1]"], "features.windows_days[1] = -1: must be > 0"),
    ("features", ["features.windows_days=[]"], "features.windows_days = []: must hold at least 1 item(s)"),
    ("features", ["features.vocab_min_count=0"], "features.vocab_min_count = 0: must be >= 1"),
    ("features", ["features.ranker_windows=-1"], "features.ranker_windows = -1: must be >= 0"),
    # trainer
    ("train", ["trainer.max_epochs=0"], "trainer.max_epochs = 0: must be >= 1"),
    ("train", ["trainer.max_epochs=2.5"], "trainer.max_epochs = 2.5: must be a whole number"),
    ("train", ["trainer.accelerator=quantum"], "trainer.accelerator = 'quantum': must be one of"),
    ("train", ["trainer.precision=8-true"], "trainer.precision = '8-true': must be one of"),
    ("train", ["trainer.devices=0"], "trainer.devices = 0: must be a count >= 1"),
    ("train", ["+trainer.callbacks=x"], "trainer.callbacks = 'x': unknown key"),
    ("train", ["trainer=ddp", "trainer.strategy=ddp_spawn"], "trainer.strategy = 'ddp_spawn': must be one of"),
    ("train", ["trainer=ddp", "trainer.num_nodes=0"], "trainer.num_nodes = 0: must be >= 1"),
    ("train", ["trainer=ddp", "trainer.num_nodes=two"], "trainer.num_nodes = 'two': must be an integer"),
    ("train", ["trainer=ddp", "trainer.devices=-2"], "trainer.devices = -2: must be a count >= 1"),
    # every model
    ("train", ["model=ease", "model.l2=-1"], "model.l2 = -1: must be > 0"),
    (
        "train",
        ["model=ease", "+model.l2reg=1"],
        "model.l2reg = 1: unknown key; known: _target_, l2, l2_scale, weighting, max_items, grid",
    ),
    ("train", ["model=ease", "model.max_items=0"], "model.max_items = 0: must be >= 1"),
    ("train", ["model=item_knn", "model.k=0"], "model.k = 0: must be >= 1"),
    ("train", ["model=item_knn", "model.shrink=-1"], "model.shrink = -1: must be >= 0"),
    ("train", ["model=item_knn", "model.last_n=0"], "model.last_n = 0: must be >= 1"),
    ("train", ["model=item_knn", "model.reach=0"], "model.reach = 0: must be >= 1"),
    ("train", ["model=item_knn", "model.max_history=0"], "model.max_history = 0: must be >= 1"),
    ("train", ["model=als", "model.factors=0"], "model.factors = 0: must be >= 1"),
    ("train", ["model=als", "model.iterations=-1"], "model.iterations = -1: must be >= 1"),
    ("train", ["model=implicit_bpr", "model.learning_rate=0"], "model.learning_rate = 0: must be > 0"),
    ("train", ["model=bpr_mf", "model.dim=-8"], "model.dim = -8: must be >= 1"),
    ("train", ["model=bpr_mf", "model.dim=640000000"], "model.dim = 640000000: must be <= 65536"),
    ("train", ["model=bpr_mf", "model.batch_size=100000000"], "model.batch_size = 100000000: must be <= 10000000"),
    ("train", ["model=sasrec", "model.max_len=1000000"], "model.max_len = 1000000: must be <= 100000"),
    ("train", ["model=bpr_mf", "model.lr=0"], "model.lr = 0: must be > 0"),
    ("train", ["model=bpr_mf", "model.batch_size=0"], "model.batch_size = 0: must be >= 1"),
    ("train", ["model=bpr_mf", "model.patience=-1"], "model.patience = -1: must be >= 0"),
    ("train", ["model=sasrec", "model.dropout=1.0"], "model.dropout = 1.0: must be < 1"),
    ("train", ["model=sasrec", "model.heads=3"], "model.heads = 3: must divide model.dim (64)"),
    ("train", ["model=sasrec", "model.train_stride=0"], "model.train_stride = 0: must be >= 1"),
    ("train", ["model=two_tower", "model.temperature=0"], "model.temperature = 0: must be > 0"),
    ("train", ["model=two_tower", "model.side_features=1"], "model.side_features = 1: must be true or false"),
    ("train", ["model=recent_popularity", "model.window_days=0"], "model.window_days = 0: must be > 0"),
    ("train", ["model=recent_popularity", "model.events=[]"], "model.events = []: must hold at least 1"),
    ("train", ["model=segment_popularity", "model.attribute=''"], "model.attribute = '': must not be empty"),
    ("train", ["model=popularity", "+model.k=3"], "model.k = 3: unknown key; known: _target_"),
    ("train", ["model=ease", "model._target_=os.system"], "model._target_ = 'os.system': must name a model"),
    # the ranker and its nested generator and grid specs
    ("train", ["model=ranker", "model.n_candidates=0"], "model.n_candidates = 0: must be >= 1"),
    ("train", ["model=ranker", "model.backend=xgboost"], "model.backend = 'xgboost': must be one of 'dcn' or"),
    ("train", ["model=ranker", "model.calibration=magic"], "model.calibration = 'magic': must be one of"),
    ("train", ["model=ranker", "model.holdout=1"], "model.holdout = 1: must be < 1"),
    ("train", ["model=ranker", "model.hidden=[64,0]"], "model.hidden[1] = 0: must be >= 1"),
    ("train", ["model=ranker", "model.generators.als.alpha=-1"], "model.generators.als.alpha = -1: must be >= 0"),
    ("train", ["model=ranker", "+model.generators.als.l3=1"], "model.generators.als.l3 = 1: unknown key"),
    ("train", ["model=ranker", "model.generators.recent30.window_days=0"], "recent30.window_days = 0: must be > 0"),
    (
        "train",
        ["model=ranker", "model.generators.als._target_=recsys_cli.models.ranker.TwoStageRanker"],
        "model.generators.als._target_ = 'recsys_cli.models.ranker.TwoStageRanker': must name a candidate generator",
    ),
    ("train", ["model=ranker_lgbm", "model.lightgbm_grid={num_leaves:[]}"], "lightgbm_grid.num_leaves = []: must hold"),
    ("train", ["model=ranker_lgbm", "model.lightgbm_cv_folds=1"], "model.lightgbm_cv_folds = 1: must be >= 2"),
    ("train", ["model=ranker_lgbm", "model.lightgbm.num_leaves=[1]"], "model.lightgbm.num_leaves = [1]"),
    ("train", ["model=ranker", "model.ablate=[eas]"], "model.ablate = [\"eas\"]: unknown name 'eas'; known: recent,"),
    ("train", ["model=ranker", "model.ablate=ease"], "model.ablate = 'ease': must be a list"),
    # eval (recsys evaluate)
    ("evaluate", ["eval.ks=[10,-1]"], "eval.ks[1] = -1: must be >= 1"),
    ("evaluate", ["eval.primary=ndcg@7"], "eval.primary = 'ndcg@7': must be one of"),
    ("evaluate", ["eval.users=some"], "eval.users = 'some': must be one of 'all' or 'warm'"),
    ("evaluate", ["eval.bootstrap.resamples=0"], "eval.bootstrap.resamples = 0: must be >= 1"),
    ("evaluate", ["eval.bootstrap.resamples=10000000"], "resamples = 10000000: must be <= 1000000"),
    ("evaluate", ["eval.bootstrap.confidence=1"], "eval.bootstrap.confidence = 1: must be < 1"),
    ("evaluate", ["eval.calibration.bins=0"], "eval.calibration.bins = 0: must be >= 1"),
    ("evaluate", ["eval.popularity_tiers.torso=0.3"], "eval.popularity_tiers = {"),
    ("evaluate", ["eval.segments.activity_edges=[20,5]"], "eval.segments.activity_edges = [20,5]: must increase"),
    ("evaluate", ["eval.thresholds.min_group_users=0"], "eval.thresholds.min_group_users = 0: must be >= 1"),
    # sweep, sampler and pruner
    ("sweep", ["model=bpr_mf", "sweep=tiny", "sweep.directions=[up]"], "sweep.directions"),
    ("sweep", ["model=bpr_mf", "sweep=tiny", "sweep.metrics=[]"], "sweep.metrics"),
    (
        "sweep",
        ["model=bpr_mf", "sweep=tiny", "sweep.params.model.lr.low=1"],
        "sweep: sweep param model.lr: low 1 is above high",
    ),
    ("sweep", ["model=bpr_mf", "sweep=tiny", "sweep.sampler.n_startup_trials=-1"], "sampler.n_startup_trials = -1"),
    ("sweep", ["model=bpr_mf", "sweep=tiny", "+sweep.sampler.seed=3"], "sweep.sampler.seed = 3: unknown key"),
    ("sweep", ["model=sasrec", "sweep.pruner.interval_steps=0"], "sweep.pruner.interval_steps = 0: must be >= 1"),
    ("sweep", ["model=sasrec", "sweep.sampler._target_=os.system"], "sweep.sampler._target_ = 'os.system'"),
    (
        "sweep",
        ["model=bpr_mf", "sweep=tiny", "sweep/pruner=hyperband", "sweep.pruner.max_resource=0"],
        "must be 'auto'",
    ),
    # abtest and its simulator, funnel and sequential test
    ("abtest", ["abtest.slate_size=0"], "abtest.slate_size = 0: must be >= 1"),
    ("abtest", ["abtest.alpha=1.5"], "abtest.alpha = 1.5: must be < 1"),
    ("abtest", ["abtest.primary_metric=clicks"], "abtest.primary_metric = 'clicks': must be one of"),
    ("abtest", ["abtest.assignment.treatment=0.9"], "treatment = 0.9: control (0.5) and treatment must sum to at most"),
    ("abtest", ["abtest.assignment.salt=7"], "abtest.assignment.salt = 7: must be text"),
    ("abtest", ["abtest.offpolicy.reward_events=[]"], "abtest.offpolicy.reward_events = []: must hold"),
    ("abtest", ["abtest.simulator.eta=-1"], "abtest.simulator.eta = -1: must be >= 0"),
    (
        "abtest",
        ["abtest/simulator=cascade", "abtest.simulator.patience=2"],
        "abtest.simulator.patience = 2: must be <=",
    ),
    ("abtest", ["abtest.simulator.funnel.holdout_fraction=1"], "abtest.simulator.funnel.holdout_fraction = 1: must"),
    ("abtest", ["abtest.simulator._target_=nowhere.Model"], "abtest.simulator._target_ = 'nowhere.Model': must name"),
    ("abtest", ["abtest/sequential=msprt", "abtest.target_lift=0"], "abtest.target_lift = 0: must be > 0"),
    ("abtest", ["seed=x"], "seed = 'x': must be an integer"),
    # serve
    ("serve", ["serve.port=70000"], "serve.port = 70000: must be <= 65535"),
    ("serve", ["serve.state=disk"], "serve.state = 'disk': must be one of 'memory' or 'redis'"),
    ("serve", ["serve.workers=2"], "serve.workers = 2: more than one worker needs serve.state=redis"),
    ("serve", ["serve.limits.max_k=0"], "serve.limits.max_k = 0: must be >= 1"),
    ("serve", ["serve.limits.default_k=500"], "serve.limits.default_k = 500: must be at most max_k (100)"),
    ("serve", ["serve.api_key_env=my-key"], "serve.api_key_env = 'my-key': must be an environment variable name"),
    ("serve", ["serve.event_log.fsync=sometimes"], "serve.event_log.fsync = 'sometimes': must be one of"),
    ("serve", ["serve.alias='a b'"], "serve.alias = 'a b': must be an alias, latest or a version number"),
    ("serve", ["+serve.colour=red"], "serve.colour = 'red': unknown key"),
    *RETRAIN_BAD,
]


@pytest.mark.parametrize(
    ("primary", "overrides", "message"), BAD, ids=lambda v: " ".join(v) if isinstance(v, list) else ""
)
def test_a_bad_value_is_one_line_naming_key_value_and_rule(primary: str, overrides: list[str], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        compose(primary, overrides)
    text = str(caught.value)
    assert text.startswith(f"config '{primary}': ") and message in text, text
    assert "\n" not in text and "Traceback" not in text and "pydantic" not in text


# ----------------------------------------------------------------------------- schemas vs consumers


def schema_keys(schema: type[Schema]) -> set[str]:
    names = {field.alias or name for name, field in schema.model_fields.items()}
    return {n for n in names if not n.startswith("_")}


def init_keys(cls: type) -> set[str]:
    """Named constructor parameters, following `**kwargs` up to the parents that take them."""
    keys: set[str] = set()
    for klass in cls.__mro__[:-1]:
        if "__init__" not in vars(klass):
            continue
        params = list(inspect.signature(klass.__init__).parameters.values())[1:]  # type: ignore[misc]
        keys |= {p.name for p in params if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)}
        if not any(p.kind in (p.VAR_KEYWORD, p.VAR_POSITIONAL) and p.name != "_" for p in params):
            break  # nothing passed on (`**_` swallows what it is given)
    return keys


def test_model_schemas_name_the_constructor_keys() -> None:
    from hydra.utils import get_class

    for schema in [*models.GENERATORS, models.TwoStageRanker, models.Blend]:
        assert schema_keys(schema) == init_keys(get_class(schema.builds() or "")), schema.__name__


def test_group_schemas_name_the_keys_their_consumers_read() -> None:
    from hydra.utils import get_class

    from recsys_cli.abtest.funnel import FunnelSpec
    from recsys_cli.data.ingest import Rules
    from recsys_cli.data.sources.base import TableSpec, TimestampSpec
    from recsys_cli.data.synth import SynthConfig
    from recsys_cli.evaluation.fairness import Thresholds
    from recsys_cli.features.build import FeatureConfig
    from recsys_cli.splits.targets import TargetSpec

    pairs = [
        (groups.RawTable, TableSpec),
        (groups.Timestamp, TimestampSpec),
        (groups.Generator, SynthConfig),
        (groups.IngestRules, Rules),
        (groups.Target, TargetSpec),
        (groups.Thresholds, Thresholds),
        (abtest_schema.Funnel, FunnelSpec),
    ]
    for schema, dataclass in pairs:
        assert schema_keys(schema) == {f.name for f in fields(dataclass)}, schema.__name__
    assert schema_keys(groups.Features) == {f.name for f in fields(FeatureConfig)} | {"name"}
    built = [
        groups.TabularSource,
        groups.SynthSource,
        groups.MovieLensSource,
        groups.RetailRocketSource,
        groups.SynthRetailRocketSource,
        groups.GlobalTemporal,
        groups.LeaveLastN,
        groups.RollingOrigin,
        abtest_schema.PositionBased,
        abtest_schema.Cascade,
        abtest_schema.FixedHorizon,
        abtest_schema.MixtureSPRT,
    ]
    for schema in built:  # `world` is given by tests and callers in code, never by a config
        assert schema_keys(schema) == init_keys(get_class(schema.builds() or "")) - {"world"}, schema.__name__


def test_local_copies_of_names_match_their_source() -> None:
    from recsys_cli.models.calibration import Method
    from recsys_cli.models.ranker import Backend

    assert models.CALIBRATIONS == typing.get_args(Method)
    assert models.BACKENDS == typing.get_args(Backend)
