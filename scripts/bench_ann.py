"""Nearest-neighbour retrieval over a 100,000-item catalogue: exact vs HNSW vs IVF.

The item vectors come from a two-tower model fitted here (`--source two_tower`,
the default) on planted-taste interactions generated in memory: users belong to
taste clusters of items and pick within them by a Zipf popularity, with some
picks from the whole catalogue. Not real shop data, but real learnt embeddings
(unit vectors from the item tower, a long tail of rarely seen items), which is
what the ANN's recall depends on. `--source synthetic` skips the fit and uses
clustered Gaussian vectors of the same width instead: say which in any report.

The fitted model is saved in <out>/model and reused by the next run (a 100k-item
two-tower for other benchmarks too); `--fresh` fits again (the reuse does not
know about changed arguments). Queries are the fitted users' own vectors
(`user_vectors`), `--queries` of them.
For each index (parameters from conf/ann/default.yaml, `exact_below` ignored) it
measures build time (on `--threads` OpenMP threads), the saved index file's size,
load time (sha256 check included), recall@100 against exact search and the
median time of one query alone on one thread (`serving.ann.measure_recall`);
then the query-time parameter (HNSW ef_search, IVF nprobe) is swept on the built
index. Writes <out>/results.json and prints a table.

    OMP_NUM_THREADS=2 python scripts/bench_ann.py
    python scripts/bench_ann.py --source synthetic --items 100000
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_movielens import git_state, machine  # noqa: E402

from recsys_cli.config import DEFAULT_CONF_DIR  # noqa: E402
from recsys_cli.serving.ann import INDEX_FILE, AnnIndex, AnnSpec, measure_recall, omp_threads  # noqa: E402

SWEEP = {"hnsw": ("ef_search", (32, 64, 128, 256, 512)), "ivf": ("nprobe", (4, 8, 16, 32, 64, 128))}


def interactions(n_users: int, n_items: int, per_user: int, seed: int) -> sp.csr_matrix:
    """(n_users + 1, n_items + 1) planted tastes: each user one cluster of 200 items,
    80% of picks inside it by Zipf rank, 20% from the catalogue by Zipf rank."""
    rng = np.random.default_rng(seed)
    size = 200
    clusters = n_items // size
    taste = rng.integers(0, clusters, n_users)
    users = np.repeat(np.arange(1, n_users + 1), per_user)
    inside = rng.random(users.size) < 0.8
    rank_in = np.minimum(rng.zipf(1.3, users.size), size) - 1
    rank_all = np.minimum(rng.zipf(1.1, users.size), n_items) - 1
    shuffle = rng.permutation(n_items)  # popularity is not item order
    items = np.where(inside, taste[users - 1] * size + rank_in, shuffle[rank_all]) + 1
    matrix = sp.csr_matrix((np.ones(users.size, np.float32), (users, items)), shape=(n_users + 1, n_items + 1))
    matrix.sum_duplicates()
    matrix.data[:] = 1.0
    return matrix


def fitted_two_tower(args: argparse.Namespace) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """Item vectors and `--queries` users' vectors of a two-tower fitted on planted
    tastes; the fitted model is kept in <out>/model and reused unless `--fresh`."""
    from recsys_cli.models.base import Recommender

    folder = args.out / "model"
    about: dict[str, Any] = {"source": "two_tower fitted on planted-taste interactions generated in memory"}
    if (folder / "model.json").is_file() and not args.fresh:
        model = Recommender.load(folder)
        about |= json.loads((args.out / "fit.json").read_text())
    else:
        model, fit = fit_two_tower(args)
        model.save(folder)
        (args.out / "fit.json").write_text(json.dumps(fit, indent=1))
        about |= fit
    assert model.users is not None
    users = np.arange(1, len(model.users))
    sample = np.random.default_rng(args.seed).choice(users, min(args.queries, users.size), replace=False)
    vectors = model.item_vectors()
    assert vectors is not None
    return vectors, model.user_vectors(sample), about


def fit_two_tower(args: argparse.Namespace) -> tuple[Any, dict[str, Any]]:
    from hydra.utils import instantiate

    from recsys_cli.config import compose
    from recsys_cli.features.vocab import OOV, Vocabulary
    from recsys_cli.models.data import TrainData

    matrix = interactions(args.users, args.items, args.per_user, args.seed)
    users = Vocabulary((OOV, *(f"u{i}" for i in range(1, args.users + 1))))
    items = Vocabulary((OOV, *(f"i{i}" for i in range(1, args.items + 1))))
    overrides = [
        "model=two_tower",
        "model.side_features=false",
        f"model.dim={args.dim}",
        f"model.batch_size={args.batch_size}",
        f"trainer.max_epochs={args.epochs}",
        "trainer.accelerator=cpu",
        "trainer.enable_progress_bar=false",
        f"seed={args.seed}",
    ]
    model = instantiate(compose("train", overrides).model, _convert_="all")
    start = time.perf_counter()
    model.fit(TrainData(users, items, matrix))
    fit = {
        "overrides": overrides,
        "fit_s": round(time.perf_counter() - start, 1),
        "interactions": int(matrix.nnz),
        "items_with_interactions": int((matrix.getnnz(axis=0) > 0).sum()),
    }
    return model, fit


def synthetic(args: argparse.Namespace) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """Clustered Gaussian vectors (500 centres), items and queries alike: synthetic."""
    centres = np.random.default_rng(args.seed).standard_normal((500, args.dim))

    def draw(n: int, seed: int) -> np.ndarray:
        rng = np.random.default_rng(seed)
        return (centres[rng.integers(0, 500, n)] + 0.5 * rng.standard_normal((n, args.dim))).astype(np.float32)

    return draw(args.items + 1, args.seed + 1), draw(args.queries, args.seed + 2), {"source": "synthetic clustered"}


def measure(kind: str, vectors: np.ndarray, queries: np.ndarray, cfg: dict[str, Any], threads: int) -> dict[str, Any]:
    spec = AnnSpec.of({**cfg, "kind": kind, "exact_below": 0})
    with omp_threads(threads):
        start = time.perf_counter()
        index = AnnIndex.build(vectors, spec)
        build_s = time.perf_counter() - start
    with tempfile.TemporaryDirectory() as tmp:
        index.save(Path(tmp))
        size = (Path(tmp) / INDEX_FILE).stat().st_size
        start = time.perf_counter()
        AnnIndex.load(Path(tmp))
        load_s = time.perf_counter() - start
    result = {"build_s": build_s, "index_mib": size / 2**20, "load_s": load_s, **measure_recall(index, queries, 100)}
    if kind in SWEEP:
        name, values = SWEEP[kind]
        result["sweep"] = []
        for value in values:
            index.set_search(**{name: value})
            result["sweep"].append(measure_recall(index, queries, 100))
    return result


def table(results: dict[str, Any]) -> Any:
    from recsys_cli.console import rows_table

    rows = []
    for kind, r in results["indexes"].items():
        params = " ".join(f"{k}={v}" for k, v in r["params"].items()) or "-"
        rows.append([kind, params, r["build_s"], r["index_mib"], r["load_s"], r["recall@100"], r["ann_ms_median"]])
        for point in r.get("sweep", []):
            name = SWEEP[kind][0]
            rows.append(
                ["", f"{name}={point['params'][name]}", "", "", "", point["recall@100"], point["ann_ms_median"]]
            )
    header = ["index", "params", "build s", "MiB", "load s", "recall@100", "query ms p50"]
    exact_ms = results["indexes"]["exact"]["exact_ms_median"]
    title = (
        f"ANN over {results['n_items'] - 1:,} items x {results['dim']} ({results['about']['source']}); "
        f"{results['indexes']['exact']['queries']:,} queries, one at a time on 1 thread (exact: {exact_ms:.3g} ms)"
    )
    return rows_table(title, header, rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source", choices=["two_tower", "synthetic"], default="two_tower")
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--users", type=int, default=50_000)
    parser.add_argument("--per-user", type=int, default=20)
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=1024)
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=2, help="OpenMP threads for building")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--out", type=Path, default=Path("bench_data/ann"))
    parser.add_argument("--fresh", action="store_true", help="fit the model again even if <out>/model exists")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)

    from omegaconf import OmegaConf

    cfg = OmegaConf.to_container(OmegaConf.load(DEFAULT_CONF_DIR / "ann" / "default.yaml"))
    assert isinstance(cfg, dict)
    vectors, queries, about = (fitted_two_tower if args.source == "two_tower" else synthetic)(args)
    results: dict[str, Any] = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "commit": git_state(),
        "machine": machine(),
        "build_threads": args.threads,
        "n_items": int(vectors.shape[0]),
        "dim": int(vectors.shape[1]),
        "about": about,
        "config": cfg,
        "indexes": {kind: measure(kind, vectors, queries, cfg, args.threads) for kind in ("exact", "hnsw", "ivf")},
    }
    (args.out / "results.json").write_text(json.dumps(results, indent=1))
    from recsys_cli.console import make_console

    make_console().print(table(results))
    print(f"wrote {args.out / 'results.json'}")


if __name__ == "__main__":
    main()
