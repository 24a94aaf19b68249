"""Options shared by several commands, defined once."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from recsys_cli.config import DEFAULT_CONF_DIR

Overrides = Annotated[
    list[str] | None,
    typer.Argument(
        help="Hydra overrides, e.g. data=movielens100k validation.max_bad_fraction=0.01", show_default=False
    ),
]
ConfigDir = Annotated[Path, typer.Option("--config-dir", help="Folder of Hydra configs.", show_default=False)]
DEFAULT_CONFIG_DIR = DEFAULT_CONF_DIR
