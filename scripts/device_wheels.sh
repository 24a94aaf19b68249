#!/usr/bin/env bash
# Wheels the GPU machine lacks, fetched here (it reaches no registry) into
# .device/wheels, which `device` carries: run once before a GPU check.
#
#   scripts/device_wheels.sh && du -sh .device/wheels     # about 40 MiB; carry=[".device"]
#
# The machine's image has Python 3.12 with PyTorch (CUDA), Lightning, NumPy, SciPy,
# scikit-learn, PyArrow, safetensors and PyYAML; recsys also needs Polars and
# Hydra, and a Typer (with its pydantic) and Rich at least as new as ours. The versions are the ones
# this checkout's .venv runs, so both machines run the same data code.
set -euo pipefail
PY=${PY:-.venv/bin/python}
OUT=${OUT:-.device/wheels}
mkdir -p "$OUT"
pins=$("$PY" - <<'PY'
from importlib.metadata import version
names = ["polars", "polars-runtime-32", "hydra-core", "omegaconf", "typer", "shellingham", "annotated-doc",
         "pydantic", "pydantic-core", "annotated-types", "typing-inspection", "rich", "markdown-it-py", "mdurl",
         "pygments"]
print(" ".join(f"{n}=={version(n)}" for n in names))
PY
)
# shellcheck disable=SC2086
"$PY" -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    --implementation cp -d "$OUT" $pins
# omegaconf's parser runtime is published as a source archive only: build its (pure Python) wheel here.
"$PY" -m pip wheel --quiet --no-deps -w "$OUT" "antlr4-python3-runtime==$("$PY" -c 'from importlib.metadata import version; print(version("antlr4-python3-runtime"))')"
ls -1 "$OUT"
