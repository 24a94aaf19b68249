#!/usr/bin/env bash
# Create .venv and install recsys with the right PyTorch build for this machine.
# Without an NVIDIA GPU the CPU build is installed (a local wheel when one is on
# pip's find-links, otherwise PyTorch's CPU index); with one, PyPI's CUDA build.
set -euo pipefail
VENV=${VENV:-.venv}
PYTHON=${PYTHON:-python3}
TORCH_VERSION=2.13.0
# Extras of recsys-cli to install: dev (tests, linters) for a checkout; empty for a
# service image, which needs only the package; add spark for engine=spark
# (EXTRAS=dev,spark, as CI does: it needs Java 17+).
EXTRAS=${EXTRAS-dev}

# The spark extra (engine=spark) runs on a JVM: refuse early, before any download,
# when no Java 17+ is there for it.
if [[ ",$EXTRAS," == *",spark,"* ]]; then
    JAVA="${JAVA_HOME:+$JAVA_HOME/bin/}java"
    JAVA_VERSION=$("$JAVA" -version 2>&1 | awk -F'"' '/version/ {print $2; exit}') || true
    JAVA_MAJOR=${JAVA_VERSION%%.*}
    if [ "$JAVA_MAJOR" = "1" ]; then JAVA_MAJOR=$(echo "$JAVA_VERSION" | cut -d. -f2); fi
    if ! [[ "$JAVA_MAJOR" =~ ^[0-9]+$ ]] || [ "$JAVA_MAJOR" -lt 17 ]; then
        echo "the spark extra needs Java 17 or newer (found: ${JAVA_VERSION:-none}); install it (Debian: openjdk-17-jre-headless) or set JAVA_HOME" >&2
        exit 1
    fi
    echo "Java $JAVA_VERSION found for the spark extra"
fi

"$PYTHON" -m venv "$VENV"
PIP="$VENV/bin/python -m pip"

if "$VENV/bin/python" -c "import torch" 2>/dev/null; then
    echo "torch already present: $("$VENV/bin/python" -c 'import torch; print(torch.__version__)')"
elif command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
    echo "NVIDIA GPU found: installing the CUDA build of torch==$TORCH_VERSION"
    $PIP install "torch==$TORCH_VERSION"
else
    echo "No GPU: installing the CPU build of torch==$TORCH_VERSION"
    # A CPU wheel on pip's find-links (as on our CI machines) is taken as is;
    # otherwise PyTorch's CPU index. Its dependencies then come from PyPI.
    if ! $PIP install --no-index --no-deps "torch==$TORCH_VERSION" 2>/dev/null; then
        $PIP install --no-deps "torch==$TORCH_VERSION" --index-url https://download.pytorch.org/whl/cpu
    fi
    $PIP install "torch==$TORCH_VERSION"
fi
if [ -n "$EXTRAS" ]; then $PIP install -e ".[$EXTRAS]"; else $PIP install -e .; fi
echo "ready: $VENV"
