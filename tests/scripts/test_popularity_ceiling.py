"""scripts/popularity_ceiling.py: one list of films for every user, ranked by the
30 days before a window (all of it, or its short visits), by the window's own
ratings, by the window's ratings of everyone but the user, or of the other scored
users only; what a user rated before the window is never listed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl

from tests.scripts import load_script

ceiling = load_script("popularity_ceiling")
START = datetime(1998, 3, 1, tzinfo=UTC)
END = START + timedelta(days=14)


def _events(rows: list[tuple[str, str, int]]) -> pl.DataFrame:
    """(user, item, day relative to the window's start), and ten films first rated
    after the window (ids z0-z9, last in every tie) so that the catalogue fills a top 10."""
    rows = rows + [("u9", f"z{j}", 30) for j in range(10)]
    return pl.DataFrame(
        {
            "user_id": [u for u, _, _ in rows],
            "item_id": [i for _, i, _ in rows],
            "ts": [START + timedelta(days=d) for _, _, d in rows],
        }
    )


def test_the_window_ranks_what_is_rated_in_it_and_the_past_what_was() -> None:
    # Before the window "b" is the month's favourite, "a" was rated by u1 (so never
    # listed to u1), "old" only 40 days back; in the window everyone rates "d".
    events = _events(
        [
            ("u1", "a", -3),
            ("u2", "b", -2),
            ("u3", "b", -5),
            ("u3", "old", -40),
            ("u3", "old2", -41),
            ("u1", "d", 2),
            ("u2", "d", 3),
            ("u3", "d", 4),
            ("u1", "c", 5),
        ]
    )
    truth = events.filter(pl.col("user_id") == "u1", pl.col("ts") >= START)
    scores = ceiling.window_scores(events, START, END, truth)
    # u1's window films are c and d. The past month's list opens with b; its zeros
    # go by all-time popularity (old and old2 rated once), then by id (c, d): hits at
    # ranks 4 and 5, where 1 and 2 were possible.
    ideal = 1 + 1 / np.log2(3)
    assert np.allclose(scores["recent_popularity_30d"], [(1 / np.log2(5) + 1 / np.log2(6)) / ideal])
    # the window's own counts put d (3) and c (1) first: a perfect list
    assert np.allclose(scores["window_popularity"], [1.0])
    # without u1's own ratings c falls to a zero, behind b, old and old2 by all time
    assert np.allclose(scores["window_popularity_others"], [(1 + 1 / np.log2(6)) / ideal])


def test_a_film_seen_before_the_window_is_never_listed() -> None:
    events = _events([("u1", "a", -1), ("u2", "a", 1), ("u2", "b", 2), ("u1", "b", 3)])
    truth = events.filter(pl.col("user_id") == "u1", pl.col("ts") >= START)
    scores = ceiling.window_scores(events, START, END, truth)
    # "a" leads the past and the window alike, but u1 rated it before: b comes first
    assert all(np.allclose(v, [1.0]) for v in scores.values())


def test_a_visit_ends_where_an_hour_passes_without_a_rating() -> None:
    minutes = [0, 30, 89, 150, 151]  # gaps of 30, 59, 61 and 1 minutes
    events = pl.DataFrame(
        {
            "user_id": ["u1"] * 5 + ["u2"],
            "item_id": [f"i{j}" for j in range(6)],
            "ts": [START + timedelta(minutes=m) for m in [*minutes, 10]],
        }
    )
    sizes = ceiling.with_visit_sizes(events).sort("user_id", "ts")["visit_size"].to_list()
    assert sizes == [3, 3, 3, 2, 2, 1]


def test_returning_members_popularity_counts_only_the_scored_users_others() -> None:
    # In the window three newcomers rate "b"; the scored users u1 and u2 both rate
    # "d". The crowd's list opens with b; the returning members' list with d,
    # which for each user is the other one's rating.
    events = _events(
        [
            ("u1", "a", -3),
            ("u2", "a", -2),
            ("u1", "d", 2),
            ("u2", "d", 3),
            ("n1", "b", 1),
            ("n2", "b", 1),
            ("n3", "b", 1),
        ]
    )
    truth = events.filter(pl.col("user_id").is_in(["u1", "u2"]), pl.col("ts") >= START)
    scores = ceiling.window_scores(events, START, END, truth)
    assert np.allclose(scores["window_popularity_returning"], [1.0, 1.0])
    assert np.allclose(scores["window_popularity_others"], [1 / np.log2(3)] * 2)
    assert np.allclose(scores["window_popularity"], [1 / np.log2(3)] * 2)
