"""The synthetic shop as a source: its CSV layout plus the generator that writes it."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from recsys_cli.console import Reporter
from recsys_cli.data.sources.tabular import TabularSource
from recsys_cli.data.synth import SynthConfig, generate


class SynthSource(TabularSource):
    def __init__(self, *args: Any, generator: Mapping[str, Any] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.generator = SynthConfig(**dict(generator or {}))

    def generate(self, out: Path | None = None, reporter: Reporter | None = None) -> dict[str, int]:
        """Write the raw CSV files this source reads (to its own `path` by default)."""
        return generate(self.generator, out or self.path, reporter)
