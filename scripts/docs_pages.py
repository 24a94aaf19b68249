"""The site's pages that are files at the repository root, generated at build time
(mkdocs-gen-files): README.md is the home page, BENCHMARKS.md and CHANGELOG.md are
pages of their own. Their text stays in one place; only links written for GitHub
(`docs/guide/data.md`, `BENCHMARKS.md`) are rewritten to the site's pages.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Root file -> the page it becomes.
PAGES = {"README.md": "index.md", "BENCHMARKS.md": "benchmarks.md", "CHANGELOG.md": "changelog.md"}
_LINK = re.compile(r"\]\((?P<target>[^)\s#]+)(?P<anchor>#[^)\s]*)?\)")


def site_link(target: str) -> str:
    """A link written from the repository root, as the site's page path."""
    if "://" in target or target.startswith("mailto:"):
        return target
    if target in PAGES:
        return PAGES[target]
    return target.removeprefix("docs/")


def rewrite_links(text: str) -> str:
    """Every markdown link of a root file, pointing at the site's pages instead."""
    return _LINK.sub(lambda m: f"]({site_link(m['target'])}{m['anchor'] or ''})", text)


def pages(root: Path = ROOT) -> dict[str, str]:
    """Page path -> its markdown, for each root file that exists (the site's build
    fails on a page in the nav that none of them made)."""
    found = {name: page for name, page in PAGES.items() if (root / name).exists()}
    return {page: rewrite_links((root / name).read_text(encoding="utf-8")) for name, page in found.items()}


def main() -> None:
    import mkdocs_gen_files

    for page, text in pages().items():
        with mkdocs_gen_files.open(page, "w") as out:
            out.write(text)


if __name__ in {"__main__", "<run_path>"}:
    main()
