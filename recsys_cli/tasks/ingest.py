"""`recsys ingest` as a function of its composed config."""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any, cast

import polars as pl
from omegaconf import DictConfig, OmegaConf

from recsys_cli.console import Reporter
from recsys_cli.data.ingest import EventsEngine, IngestResult, PolarsEvents, Rules, ingest
from recsys_cli.data.personal import policy_from_config
from recsys_cli.data.pseudonymise import load_key
from recsys_cli.data.read_errors import polars_error_summary
from recsys_cli.data.remote import is_remote, mirrored, recorded
from recsys_cli.errors import ConfigError, SourceError
from recsys_cli.spark.session import spark_settings


def run(
    cfg: DictConfig, append: bool = False, reporter: Reporter | None = None, live_events: Sequence[Path] = ()
) -> IngestResult:
    """Ingest `cfg.data` into `cfg.lake_dir`, plus any `live_events` exports of a service
    (`data/sources/live_events.py`), whose user ids already are the lake's pseudonyms.

    A remote `lake_dir` (s3://) is built in a local mirror of its current version and
    published when the ingest succeeds (`data/remote/`); the raw inputs stay local.

    `engine` (polars by default) says where the passes over the events run, never
    what they write: both engines write the same lake (`spark/ingest.py`)."""
    from recsys_cli.config import build

    if is_remote(cfg.data.get("path")):
        raise ConfigError(
            f"data.path = {cfg.data.path}: raw inputs are read from a local folder; set paths.raw_dir (or "
            "data.path) to one when paths.data_dir is an object store"
        )

    source = build(cfg.data)
    pii = cfg.pii
    key = load_key(pii.key_env, pii.allow_development_key, pii.min_key_length)
    if live_events:
        from recsys_cli.data.sources.live_events import WithLiveEvents

        source = WithLiveEvents(source, live_events, key.fingerprint, append)
    personal = policy_from_config(cast(dict[str, Any], OmegaConf.to_container(pii, resolve=True)))
    rules = Rules(**cast(dict[str, Any], OmegaConf.to_container(cfg.validation)))
    snapshot = recorded(cfg)  # the lake's URL, never the cache's path: the same fingerprint on every machine
    try:
        with ExitStack() as stack:
            engine = _engine(cfg, stack)
            local = stack.enter_context(mirrored(cfg, writes="lake_dir", update=True))
            lake = Path(local.lake_dir)
            return ingest(source, lake, key, personal, rules, snapshot, append=append, reporter=reporter, engine=engine)
    except (pl.exceptions.PolarsError, pl.exceptions.PanicException) as exc:
        # A reader error that no step turned into its own message: name the source, never
        # the reader's text, which can quote cell values (user ids, e-mails); --debug keeps it.
        where = getattr(source, "path", cfg.data.get("path", "the source"))
        raise SourceError(f"{where}: cannot be read ({polars_error_summary(exc)}); --debug shows the details") from exc


def _engine(cfg: DictConfig, stack: ExitStack) -> EventsEngine:
    """The config's engine (absent: polars); Spark's session lives as long as `stack`."""
    settings = spark_settings(cfg, "ingest")
    if settings is None:
        return PolarsEvents()
    from recsys_cli.spark.ingest import spark_events

    return stack.enter_context(spark_events(settings))
