"""The root files become site pages (scripts/docs_pages.py) with their links rewritten
from the repository's layout to the site's."""

from __future__ import annotations

from pathlib import Path

from tests.docs import load_script

docs_pages = load_script("docs_pages")


def test_links_written_for_github_point_at_site_pages() -> None:
    text = "[a](docs/guide/data.md#the-lake) [b](BENCHMARKS.md) [c](https://x.org/docs/a.md) [d](CHANGELOG.md)"
    assert docs_pages.rewrite_links(text) == (
        "[a](guide/data.md#the-lake) [b](benchmarks.md) [c](https://x.org/docs/a.md) [d](changelog.md)"
    )


def test_pages_are_made_from_the_files_that_exist(tmp_path: Path) -> None:
    (tmp_path / "README.md").write_text("# r\n[g](docs/getting-started.md)\n")
    assert docs_pages.pages(tmp_path) == {"index.md": "# r\n[g](getting-started.md)\n"}
