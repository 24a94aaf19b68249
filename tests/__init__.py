"""The test suite. Before anything of recsys is imported (its consoles read the
terminal size once): GNU readline, once imported (pytest-xdist's workers import it),
exports the size of a terminal that is not there, COLUMNS=80 and LINES=24, and the
CLI's tables and lines would be cut at 80 columns on a worker and printed whole
without one. The suite runs without a terminal width, as under CI; a test that
wants one sets it."""

import os

for _size in ("COLUMNS", "LINES"):
    os.environ.pop(_size, None)
