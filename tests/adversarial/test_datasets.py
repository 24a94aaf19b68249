"""`recsys datasets synth` and `recsys datasets list`: sizes, seeds, and where the raw files go."""

from __future__ import annotations

import pytest

from tests.adversarial.conftest import RAW, SPLIT, Workspace, cases

BAD_SIZES = {
    "zero events": ("data.generator.n_events=0",),
    "negative events": ("data.generator.n_events=-100",),
    "zero days": ("data.generator.n_days=0",),
    "negative days": ("data.generator.n_days=-5",),
    "negative users": ("data.generator.n_users=-1",),
    "negative items": ("data.generator.n_items=-3",),
    "zero categories": ("data.generator.n_categories=0",),
    "negative brands": ("data.generator.n_brands=-2",),
    "events not a number": ("data.generator.n_events=lots",),
    "fractional events": ("data.generator.n_events=10.5",),
    "seed not a number": ("data.generator.seed=abc",),
    "negative seed": ("data.generator.seed=-1",),
    "start not a date": ("data.generator.start=someday",),
    "unknown generator key": ("+data.generator.n_planets=3",),
    "absurd size": ("data.generator.n_events=100000000000000",),
}


@pytest.mark.slice("E")
@pytest.mark.parametrize("overrides", cases(BAD_SIZES, fast=4))
def test_synth_refuses_bad_sizes(ws: Workspace, overrides: tuple[str, ...]) -> None:
    ws.refused("datasets", "synth", *overrides, "paths.raw_dir=data/raw-fresh")


BAD_SYNTH_PATHS = {
    "raw_dir that makes the output the lake": ("paths.raw_dir=data/lake",),
    "output is the split": (f"data.path={SPLIT}",),
    "output is the working directory": ("data.path=.",),
    "output is the data folder": ("data.path=data",),
    "output is the runs folder": ("data.path=runs",),
    "output is a run": ("data.path=RUN",),
    "output is a file": (f"data.path={RAW}/events.csv",),
}


@pytest.mark.slice("A")
@pytest.mark.parametrize("overrides", cases(BAD_SYNTH_PATHS, fast=2))
def test_synth_never_writes_over_what_is_not_its_own(ws: Workspace, overrides: tuple[str, ...]) -> None:
    overrides = tuple(o.replace("RUN", ws.runs["ease"]) for o in overrides)
    ws.refused("datasets", "synth", "data.generator.n_events=500", *overrides)


@pytest.mark.slow
@pytest.mark.slice("A")
def test_synth_into_a_folder_of_foreign_files_is_refused(ws: Workspace) -> None:
    """A raw folder holding the user's own export (no synth manifest) is not the generator's to replace."""
    folder = ws.path("data/raw/mine")
    folder.mkdir(parents=True)
    (folder / "events.csv").write_text("user_id,item_id,event_type,ts\nu1,i1,view,2026-01-01T00:00:00Z\n")
    ws.refused("datasets", "synth", "data.generator.n_events=500", "data.path=data/raw/mine")


@pytest.mark.slice("E")
@pytest.mark.parametrize(
    "source", cases({s: s for s in ["generic", "movielens100k", "retailrocket", "nosuch"]}, fast=1)
)
def test_synth_refuses_a_source_it_cannot_generate(ws: Workspace, source: str) -> None:
    ws.refused("datasets", "synth", f"data={source}", "data.generator.n_events=500", "paths.raw_dir=data/raw-fresh")


@pytest.mark.slice("A")
def test_synth_rerun_over_its_own_output_is_allowed(ws: Workspace) -> None:
    ws.succeeds("datasets", "synth", "data.generator.n_events=3000", "data.generator.n_days=40", may_change=[RAW])


@pytest.mark.slice("E")
@pytest.mark.parametrize(
    "config_dir", cases({"missing": "no/such/conf", "a file": f"{RAW}/events.csv", "empty": "EMPTY"}, fast=1)
)
def test_datasets_list_refuses_a_bad_config_dir(ws: Workspace, config_dir: str) -> None:
    if config_dir == "EMPTY":
        ws.path("conf-empty").mkdir()
        config_dir = "conf-empty"
    ws.refused("datasets", "list", "--config-dir", config_dir)


@pytest.mark.slow
@pytest.mark.slice("E")
def test_datasets_list_with_a_broken_source_config_is_clean(ws: Workspace) -> None:
    """One unreadable YAML in conf/data/: listed as broken or refused, never a traceback."""
    import shutil

    from recsys_cli.config import DEFAULT_CONF_DIR

    shutil.copytree(DEFAULT_CONF_DIR, ws.path("conf-copy"))
    (ws.path("conf-copy") / "data" / "broken.yaml").write_text("name: [unclosed\n")
    ws.handled("datasets", "list", "--config-dir", "conf-copy")
