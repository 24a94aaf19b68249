"""What the tutorials' test provides in place of what a reader fetches or runs:
a small MovieLens-format sample where the fetch script would write the real data,
and the services (PostgreSQL, S3, Spark) a page needs."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from tests.s3 import s3_server

CI_ENV = "RECSYS_CI"
GENRES = ("Action", "Comedy", "Drama", "Horror", "Romance", "Sci-Fi")


def write_movielens_sample(folder: Path, n_users: int = 120, n_items: int = 180, seed: int = 0) -> Path:
    """RecBole's atomic files (what scripts/fetch_movielens100k.sh writes), at a
    hundredth of the size: users who each favour one genre, items of
    power-law popularity, 15-40 ratings a user in order over eight months of
    1997-98, some rated in the same second as the one before (as MovieLens users
    do). Deterministic for a seed."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    genre = rng.integers(0, len(GENRES), n_items)
    weight = 1.0 / np.arange(1, n_items + 1) ** 0.8
    start = 874_724_710  # 1997-09-20, where MovieLens-100K begins
    rows = ["user_id:token\titem_id:token\trating:float\ttimestamp:float"]
    for user in range(1, n_users + 1):
        taste = rng.integers(0, len(GENRES))
        p = weight * np.where(genre == taste, 6.0, 1.0)
        items = rng.choice(n_items, size=int(rng.integers(15, 41)), replace=False, p=p / p.sum())
        ts = start + int(rng.integers(0, 150 * 86_400))
        for item in items:
            ts += 0 if rng.random() < 0.2 else int(rng.integers(60, 20 * 86_400))
            rating = int(np.clip(rng.normal(4.2 if genre[item] == taste else 3.0, 0.8), 1, 5))
            rows.append(f"{user}\t{item + 1}\t{rating}\t{ts}")
    (folder / "ml-100k.inter").write_text("\n".join(rows) + "\n")
    items_rows = ["item_id:token\tmovie_title:token_seq\trelease_year:token\tclass:token_seq"]
    items_rows += [f"{i + 1}\tFilm {i + 1}\t{1970 + i % 28}\t{GENRES[g]}" for i, g in enumerate(genre)]
    (folder / "ml-100k.item").write_text("\n".join(items_rows) + "\n")
    users_rows = ["user_id:token\tage:token\tgender:token\toccupation:token\tzip_code:token"]
    users_rows += [
        f"{u}\t{18 + u % 50}\t{'MF'[u % 2]}\t{('student', 'writer', 'engineer')[u % 3]}\t{10000 + u}"
        for u in range(1, n_users + 1)
    ]
    (folder / "ml-100k.user").write_text("\n".join(users_rows) + "\n")
    return folder


def missing_service(message: str) -> None:
    """A service a page needs is not there: a skip locally, a failure under CI."""
    if os.environ.get(CI_ENV):
        pytest.fail(f"{message} (.ci/run provides it; CI must not skip a tutorial)")
    pytest.skip(message)


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    yield from s3_server()


@pytest.fixture(scope="session")
def spark_available() -> None:
    """pyspark and Java 17+, which `engine=spark` needs."""
    from recsys_cli.errors import ConfigError
    from recsys_cli.spark.session import require_spark

    try:
        require_spark()
    except ConfigError as exc:
        missing_service(str(exc))


@pytest.fixture(scope="session")
def postgres_url() -> str:
    url = os.environ.get("RECSYS_TEST_POSTGRES_URL")
    if not url:
        missing_service("RECSYS_TEST_POSTGRES_URL is not set: .ci/run starts a PostgreSQL server and sets it")
    return str(url)
