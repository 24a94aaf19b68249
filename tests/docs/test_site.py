"""The docs site builds under --strict, as `make docs` builds it: a broken link, a
missing page or a page left out of the nav fails here, and so in CI. One build
(about 10 s) serves every check of the output."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.docs import ROOT

# Pages others write, which the nav names: a missing one is said plainly, before the build.
WRITTEN_ELSEWHERE = [
    "docs/tutorials/index.md",
    "docs/tutorials/own-data.md",
    "docs/tutorials/movielens.md",
    "docs/tutorials/sweep-postgres.md",
    "docs/tutorials/monitor-retrain.md",
    "docs/tutorials/scale-out.md",
    "docs/guide/configuration.md",
    "CHANGELOG.md",
]
GENERATED = ["reference/cli", "reference/config", "reference/formats", "reference/http-api", "reference/models"]
QUIET = {"NO_MKDOCS_2_WARNING": "1", "DISABLE_MKDOCS_2_WARNING": "true"}


class _Loader(yaml.SafeLoader):
    """mkdocs.yml names a Python function (the mermaid fence): kept as its name."""


_Loader.add_multi_constructor("tag:yaml.org,2002:python/name:", lambda loader, suffix, node: suffix)


def config() -> dict:
    return yaml.load((ROOT / "mkdocs.yml").read_text(), Loader=_Loader)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    missing = [page for page in WRITTEN_ELSEWHERE if not (ROOT / page).exists()]
    assert not missing, f"pages the site's nav names are not written yet: {', '.join(missing)}"
    out = tmp_path_factory.mktemp("site")
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
        cwd=ROOT,
        env={**os.environ, **QUIET, "OMP_NUM_THREADS": "1"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, f"mkdocs build --strict failed:\n{done.stderr[-4000:]}"
    return out


def page(site: Path, name: str) -> str:
    path = site / name / "index.html" if name else site / "index.html"
    assert path.exists(), f"{name or 'home'}: no page in the built site"
    return path.read_text(encoding="utf-8")


def text(html: str) -> str:
    """The page's words, without the markup (code is split into highlighted spans)."""
    return re.sub(r"<[^>]+>", "", html)


def test_every_warning_fails_the_build() -> None:
    cfg = config()
    assert cfg["strict"] is True
    assert set(cfg["validation"].values()) == {"warn"}, "a link problem must be a warning, so --strict fails on it"
    assert cfg["theme"]["font"] is False, "no web fonts: the build and the site fetch nothing"


def test_the_home_page_is_the_readme(site: Path) -> None:
    home = page(site, "")
    assert "make demo" in text(home) and "make test" in text(home)
    assert 'class="mermaid"' in home, "the pipeline's picture"
    assert 'href="getting-started/"' in home, "README links into docs/ point at the site's pages"


def test_references_are_generated_from_the_code(site: Path) -> None:
    cli = text(page(site, "reference/cli"))
    for command in ("recsys ingest", "recsys train", "recsys registry promote", "recsys serve"):
        assert command in cli, command
    assert "model=ease" in page(site, "reference/config")
    assert "/recommend" in page(site, "reference/http-api")
    formats = page(site, "reference/formats")
    assert "build_manifest" in formats and "seal_run" in formats and "seal_package" in formats
    models = page(site, "reference/models")
    assert "Recommender" in models and "_load_state" in models, "mkdocstrings rendered the interface"


def test_tutorials_guide_benchmarks_and_changelog_are_pages(site: Path) -> None:
    for name in [
        "tutorials",
        "tutorials/own-data",
        "tutorials/movielens",
        "tutorials/sweep-postgres",
        "tutorials/monitor-retrain",
        "tutorials/scale-out",
        "guide/configuration",
        "guide/serving",
        "benchmarks",
        "changelog",
        *GENERATED,
    ]:
        page(site, name)
    assert "MovieLens-100K" in page(site, "benchmarks")
