"""The progress display: finished steps stay visible, a failed command leaves only its error."""

import pytest

from recsys_cli.console import rich_progress
from recsys_cli.errors import LakeError


def test_finished_steps_are_printed(capsys: pytest.CaptureFixture[str]) -> None:
    with rich_progress() as reporter:
        reporter.start("hashing inputs", total=2)
        reporter.advance(2)
    assert "hashing inputs" in capsys.readouterr().err


def test_a_failure_erases_the_half_drawn_bars(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(LakeError), rich_progress() as reporter:
        reporter.start("hashing inputs", total=3)
        reporter.advance()
        raise LakeError("damaged lake")
    assert capsys.readouterr().err.strip() == ""
