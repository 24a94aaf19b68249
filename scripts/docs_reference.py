"""The docs site's reference pages, written at build time by mkdocs-gen-files
(mkdocs.yml): each generator module below has a PAGE (its path under docs/) and a
page() that renders it from the code, so no reference is ever written twice.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

GENERATORS = ("docs_cli", "docs_config", "docs_formats", "docs_http")


def main() -> None:
    import mkdocs_gen_files

    for name in GENERATORS:
        module = importlib.import_module(name)
        with mkdocs_gen_files.open(module.PAGE, "w") as out:
            out.write(module.page())


if __name__ in {"__main__", "<run_path>"}:
    main()
