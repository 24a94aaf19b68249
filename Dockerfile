# syntax=docker/dockerfile:1
# `recsys serve` in a container: CPU PyTorch, a non-root user, the registry and the
# event log on volumes. The install is the project's own (scripts/setup_venv.sh, what
# `make setup` and the README's quickstart run) so that the image cannot drift from it;
# tests/test_dockerfile.py checks that it stays so. Untested on our machines, where
# Docker cannot run: see docs/guide/deploying.md.
FROM python:3.12-slim

# OMP_NUM_THREADS=1: faiss and torch use one OpenMP thread per request thread (threads
# contending cost more than they gain on a single query).
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    OMP_NUM_THREADS=1

# LightGBM's wheel links the system's OpenMP runtime; slim images lack it.
RUN apt-get update \
    && apt-get install -y --no-install-recommends libgomp1 \
    && rm -rf /var/lib/apt/lists/*

# What the editable install needs: the package, its configs (found next to it, as in a
# checkout), pyproject.toml and the README it names. Nothing else is copied.
WORKDIR /app
COPY pyproject.toml README.md ./
COPY scripts/setup_venv.sh scripts/setup_venv.sh
COPY conf conf
COPY recsys_cli recsys_cli
# No GPU while building: the script installs the CPU build of the pinned torch, then
# the package without its dev extra (EXTRAS=). The pip cache survives rebuilds (BuildKit) without entering the image.
RUN --mount=type=cache,target=/root/.cache/pip \
    VENV=/opt/venv EXTRAS= ./scripts/setup_venv.sh
ENV PATH=/opt/venv/bin:$PATH

# The service's working directory: registry.uri (registry) and serve.event_log.dir
# (data/live/events) are relative to it, and both are volumes owned by the service's
# unprivileged user (a new named volume takes this ownership).
RUN useradd --create-home --home-dir /srv/recsys --uid 10001 --user-group recsys \
    && mkdir -p /srv/recsys/registry /srv/recsys/data/live/events \
    && chown -R recsys:recsys /srv/recsys
USER recsys
WORKDIR /srv/recsys
VOLUME ["/srv/recsys/registry", "/srv/recsys/data/live"]

# RECSYS_API_KEY (required unless serve.auth=false) and RECSYS_PII_KEY (the key of the
# lake the model was trained on) come from the environment at run time, never the image.
EXPOSE 8000
# recsys serve loads and verifies the model before it listens: /healthz answering means
# a model is being served. No curl in slim images: Python's urllib.
HEALTHCHECK --interval=15s --timeout=5s --start-period=120s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4)"]
# Arguments after the image name are Hydra overrides (serve.state=redis ...) or options.
ENTRYPOINT ["recsys", "serve", "--host", "0.0.0.0", "--port", "8000"]
CMD []
