"""The synthetic shop as a source: its CSV layout plus the generator that writes it.

Two layouts, two sources: `SynthSource` reads the shop's own CSV files through a
column mapping; `SynthRetailRocketSource` is the RetailRocket source, unchanged,
over a folder the generator writes in RetailRocket's layout. Both can `generate`
the raw files they read.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from recsys_cli.console import Reporter
from recsys_cli.data.sources.retailrocket import RetailRocketSource
from recsys_cli.data.sources.tabular import TabularSource
from recsys_cli.data.synth import SynthConfig, generate
from recsys_cli.errors import ConfigError


def _generator(source: str, layout: str, generator: Mapping[str, Any] | None) -> SynthConfig:
    """The generator config of a source that reads `layout`: a generator writing
    another layout would leave files the source cannot read."""
    cfg = SynthConfig(**{"layout": layout, **dict(generator or {})})
    if cfg.layout != layout:
        raise ConfigError(f"data.generator.layout: {cfg.layout!r}, but source {source} reads the {layout!r} layout")
    return cfg


class SynthSource(TabularSource):
    def __init__(self, *args: Any, generator: Mapping[str, Any] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.generator = _generator(self.name, "shop", generator)

    def generate(self, out: Path | None = None, reporter: Reporter | None = None) -> dict[str, int]:
        """Write the raw CSV files this source reads (to its own `path` by default)."""
        return generate(self.generator, out or self.path, reporter)


class SynthRetailRocketSource(RetailRocketSource):
    """RetailRocket's reader over the synthetic shop written in RetailRocket's layout."""

    def __init__(
        self, name: str, path: str | Path, description: str = "", generator: Mapping[str, Any] | None = None
    ) -> None:
        super().__init__(name, path, description)
        self.generator = _generator(name, "retailrocket", generator)

    def generate(self, out: Path | None = None, reporter: Reporter | None = None) -> dict[str, int]:
        """Write events.csv, item_properties_part1/2.csv and category_tree.csv (to `path` by default)."""
        return generate(self.generator, out or self.path, reporter)
