"""The reference of the serving benchmark: a bare FastAPI endpoint doing one exact faiss search.

`POST /recommend` takes the body `recsys serve` takes (`{"user_id": ..., "k": ...}`,
validated the same way by a pydantic model), draws a random user vector and returns
the exact top k by inner product (`IndexFlatIP`) over the package's item vectors:
no pseudonymisation, no user state, no rules, no logging. Served like `recsys
serve` (uvicorn, one worker, access log off, a sync handler on the thread pool,
OMP_NUM_THREADS=1 from the environment), so the difference between the two under
the same load is what the service's pipeline costs (scripts/bench_serve.py).

The vectors are those of the package's ANN index (`--ann DIR`, an `ann/<name>/`
folder, searched exactly whatever its kind) or, for a package without one,
random normal vectors of the catalogue's size (`--random N DIM`).

    python scripts/bare_faiss_server.py --ann registry/NAME/versions/1/ann/model --port 0
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

QUERY_POOL = 4096  # random user vectors drawn once; each request takes the next


class Recommend(BaseModel):
    """The request body, checked as `recsys serve` checks its own (unknown fields refused)."""

    model_config = ConfigDict(extra="forbid")
    user_id: str = Field(min_length=1, max_length=256)
    k: int = Field(10, ge=1, le=100)


def exact_index(options: argparse.Namespace) -> Any:
    """An exact `AnnIndex` over the package's item vectors, or over random ones."""
    from recsys_cli.serving.ann import AnnIndex, AnnSpec

    if options.ann is not None:
        return AnnIndex.load(options.ann).exact()
    n_items, dim = options.random
    vectors = np.random.default_rng(options.seed).standard_normal((n_items + 1, dim)).astype(np.float32)
    return AnnIndex.build(vectors, AnnSpec(kind="exact"))


def create_app(index: Any, seed: int) -> Any:
    """The app: one route doing one exact search per request."""
    from fastapi import FastAPI
    from fastapi.responses import JSONResponse

    queries = np.random.default_rng(seed).standard_normal((QUERY_POOL, index.dim)).astype(np.float32)
    counter = iter(range(1 << 62))
    app = FastAPI(title="bare faiss")

    @app.post("/recommend")
    def recommend(body: Recommend) -> JSONResponse:
        query = queries[next(counter) % QUERY_POOL][None, :]
        ids, scores = index.search(query, body.k)
        return JSONResponse({"items": ids[0].tolist(), "scores": scores[0].tolist()})

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app


def serve(app: Any, host: str, port: int, what: str) -> None:
    """Serve until SIGTERM/SIGINT; the bound address printed first (port 0 picks one).
    The socket is uvicorn's own (`bind_socket`, as `recsys serve --workers N` binds it):
    one made by hand without proto=IPPROTO_TCP gets no TCP_NODELAY from asyncio, and
    Nagle's algorithm against the client's delayed ACK then adds 40 ms to every answer."""
    import uvicorn

    config = uvicorn.Config(
        app, host=host, port=port, access_log=False, log_level="warning", lifespan="on", timeout_graceful_shutdown=10
    )
    sock = config.bind_socket()
    bound_host, bound_port = sock.getsockname()[:2]
    print(f"serving {what} on http://{bound_host}:{bound_port}", flush=True)
    uvicorn.Server(config).run(sockets=[sock])


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--ann", type=Path, help="a package's ann/<name>/ folder (index.faiss, ann.json)")
    source.add_argument("--random", type=int, nargs=2, metavar=("N_ITEMS", "DIM"), help="random item vectors")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--seed", type=int, default=0)
    options = parser.parse_args(argv)
    index = exact_index(options)
    serve(create_app(index, options.seed), options.host, options.port, f"bare faiss ({index.size} x {index.dim})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
