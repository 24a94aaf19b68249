"""The first stage of a two-stage recommender: candidates and their features.

Several retrieval models each propose their top items for a user; the union is
re-ranked by a second stage that sees far more than any one of them: every
generator's score and rank, the item's point-in-time popularity, age, rating and
trend, the user's activity and demographics, and how much of the user's history
falls in the item's category. Everything here is computed from one feature set
(one cutoff), so the same code builds training pairs at earlier cutoffs and
serving pairs at the latest one.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import scipy.sparse as sp

from recsys_cli.data.schema import Col
from recsys_cli.models.base import Recommender
from recsys_cli.models.data import TrainData
from recsys_cli.models.live_features import LiveUserFeatures
from recsys_cli.models.side_features import SideFeatures, encode_side

ITEM_BUCKETS = {"price": 10, "age_days": 8, "release_year": 8}
_BATCH_USERS = 256


@dataclass
class Pairs:
    """Candidate (user, item) pairs, grouped by user in the order users were asked."""

    rows: np.ndarray  # (n,) position of the pair's user in the users asked for
    users: np.ndarray  # (n,) user index
    items: np.ndarray  # (n,) item index
    numeric: np.ndarray  # (n, n_numeric) float32
    categorical: np.ndarray  # (n, n_categorical) int64


FIELDS = ("rows", "users", "items", "numeric", "categorical")


@dataclass
class SideTables:
    """A feature set's user and item tables in index space, plus each user's share
    of history per item category."""

    users: SideFeatures
    items: SideFeatures
    affinity: np.ndarray  # (n_users, n_categories) float32
    item_category: np.ndarray  # (n_items,) category index, 0 = none
    # How live events move the user table (`LiveUserFeatures.as_array`); no rows: they do not.
    user_live: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))

    @classmethod
    def of(cls, data: TrainData, like: SideTables | None = None, profile: Sequence[str] = ()) -> SideTables:
        """`profile`: item numeric columns whose mean over each user's history joins the
        user's columns (`user_profile`)."""
        users = encode_side(
            data.user_features, Col.USER, data.users, data.vocabularies, like=like.users if like else None
        )
        items = encode_side(
            data.item_features,
            Col.ITEM,
            data.items,
            data.vocabularies,
            ITEM_BUCKETS,
            like=like.items if like else None,
        )
        category = (
            items.categorical[:, items.names.index(Col.CATEGORY)]
            if Col.CATEGORY in items.names
            else np.zeros(data.n_items, np.int64)
        )
        if profile:
            users = user_profile(users, items, data.matrix, profile)
        live = LiveUserFeatures.of(users)
        user_live = live.as_array() if live.moves else np.zeros((0, users.numeric.shape[1]))
        return cls(users, items, category_affinity(data.matrix, category), category, user_live)

    def cardinalities(self, n_items: int) -> tuple[int, ...]:
        """Embedding sizes of `Pairs.categorical`: item id, then item and user columns."""
        return (n_items, *self.items.cardinalities, *self.users.cardinalities)


PROFILE = "profile_"


def user_profile(
    users: SideFeatures, items: SideFeatures, matrix: sp.csr_matrix, columns: Sequence[str]
) -> SideFeatures:
    """`users` with one more numeric column per named item column: its mean over the
    items of the user's history, weighted as the interactions are (`profile_<column>`;
    0, the column's mean, without history). A user who watches new releases, or only
    the most popular films, then differs from one who digs into the back catalogue,
    and the second stage can match each candidate against that. The item columns are
    already standardised, so the profile is in their units. A named column the item
    table lacks is skipped (every cutoff of one fit reads the same table layout)."""
    names = items.numeric_names
    wanted = [c for c in columns if c in names]
    if not wanted:
        return users
    values = items.numeric[:, [names.index(c) for c in wanted]].astype(np.float64)
    weights = abs(matrix).astype(np.float64).tocsr()
    total = np.asarray(weights.sum(axis=1)).ravel()
    profile = np.asarray(weights @ values) / np.maximum(total, 1e-12)[:, None]
    profile[total <= 0] = 0.0
    scale = np.concatenate([users.scale, np.tile([[0.0], [1.0]], (1, len(wanted)))], axis=1)
    return replace(
        users,
        numeric=np.concatenate([users.numeric, profile.astype(np.float32)], axis=1),
        names=(*users.names, *(f"{PROFILE}{c}" for c in wanted)),
        scale=scale,
    )


def category_affinity(matrix: sp.csr_matrix, category: np.ndarray) -> np.ndarray:
    """Share of each user's interaction weight that falls in each category."""
    n_categories = int(category.max()) + 1 if category.size else 1
    onehot = sp.csr_matrix(
        (np.ones(category.size, np.float32), (np.arange(category.size), category)), shape=(category.size, n_categories)
    )
    per_category = np.asarray((matrix @ onehot).todense(), dtype=np.float32)
    total = per_category.sum(axis=1, keepdims=True)
    return np.divide(per_category, total, out=np.zeros_like(per_category), where=total > 0)


def candidate_pairs(
    generators: Mapping[str, Recommender],
    tables: SideTables,
    users: np.ndarray,
    n_candidates: int,
    batch: int | None = None,
) -> Pairs:
    """Union of every generator's top `n_candidates` unseen items for each user,
    with the features of each pair. Generators find their lists and score the
    union's pairs through `Recommender.candidates` and `pair_scores`, which touch
    the whole catalogue only for models that must; users go through `batch` at a
    time, so the pairs' features in memory stay flat as the data grows."""
    batch = batch or _BATCH_USERS
    parts = [
        _batch_pairs(generators, tables, users[i : i + batch], n_candidates, i) for i in range(0, users.size, batch)
    ]
    if not parts:
        n_num = 3 * len(generators) + 1 + tables.items.numeric.shape[1] + tables.users.numeric.shape[1]
        n_cat = 1 + tables.items.categorical.shape[1] + tables.users.categorical.shape[1]
        return Pairs(
            np.zeros(0, np.int64),
            np.zeros(0, np.int64),
            np.zeros(0, np.int64),
            np.zeros((0, n_num), np.float32),
            np.zeros((0, n_cat), np.int64),
        )
    return Pairs(*(np.concatenate([getattr(p, f) for p in parts]) for f in FIELDS))


def _batch_pairs(
    generators: Mapping[str, Recommender], tables: SideTables, users: np.ndarray, n: int, offset: int
) -> Pairs:
    """One batch's pairs, found for its users in ascending order, each once, then put
    in the order asked: a generator reuses the rows its candidates computed for the
    pairs' scores only when the users come sorted and unique (`_parts_of`), and an
    evaluation asks in the order of user ids (10.9 against 6.8 ms a user for the
    10M shop's ranker). A user's pairs do not depend on the others in the batch."""
    unique, inverse = np.unique(users, return_inverse=True)
    lists = {name: model.candidates(unique, n) for name, model in generators.items()}
    own = {name: _fitted_scorer(model, unique) for name, model in generators.items()}
    found = _pairs(lists, own, unique, n, 0, tables)
    if unique.size == users.size and (inverse == np.arange(users.size)).all():
        return replace(found, rows=found.rows + offset)
    counts = np.bincount(found.rows, minlength=unique.size)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    per_user = counts[inverse]
    # Each asked position takes its user's run of pairs, in the order asked.
    take = np.repeat(starts[inverse] - np.cumsum(per_user) + per_user, per_user) + np.arange(per_user.sum())
    rows = np.repeat(np.arange(users.size), per_user) + offset
    return Pairs(rows, found.users[take], found.items[take], found.numeric[take], found.categorical[take])


def history_pairs(
    generators: Mapping[str, Recommender],
    tables: SideTables,
    user: int,
    items: np.ndarray,
    events: list[str],
    n_candidates: int,
    exclude: np.ndarray | None = None,
    recency_days: float | None = None,
) -> Pairs:
    """One user's candidate pairs with their live events folded in: each generator
    that can (`score_history`) proposes from the updated history and scores every
    pair from it, the others answer from their fitted state; the pair's category
    affinity counts the new items' categories, and a known user's event counts and
    recency (`recency_days`: since their newest event) move (`live_features.py`).
    Their other features stay those of the snapshot. `exclude`: items never
    proposed (the user's seen ones)."""
    users = np.array([user], dtype=np.int64)
    lists: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    own: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {}
    for name, model in generators.items():
        scores = model.score_history(user, items, events) if items.size else None
        if scores is None:
            lists[name] = model.candidates(users, n_candidates)
            own[name] = _fitted_scorer(model, users)
            continue
        scores = np.asarray(scores, dtype=np.float32).copy()
        scores[0] = -np.inf
        if exclude is not None:
            scores[exclude] = -np.inf
        lists[name] = _row_top(scores, n_candidates)
        own[name] = _lookup(score_history_values(scores))
    affinity = tables.affinity[users]
    user_numeric = None
    if items.size:
        affinity = _with_categories(affinity, tables.item_category[items], seen=float(len(items)))
        if user > 0 and tables.user_live.shape[0]:
            live = LiveUserFeatures.from_array(tables.user_live)
            user_numeric = live.updated(tables.users.numeric[user], events, recency_days)[None, :]
    return _pairs(lists, own, users, n_candidates, 0, tables, affinity, user_numeric)


def _fitted_scorer(model: Recommender, users: np.ndarray) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    """A pair scorer from the model's fitted state."""
    return lambda rows, items: model.pair_scores(users[rows], items)


def _lookup(values: np.ndarray) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    """A pair scorer for one user's dense row of scores."""
    return lambda rows, items: values[items]


def score_history_values(scores: np.ndarray) -> np.ndarray:
    """A generator's history scores as pair features: -inf (seen, unknown) read 0."""
    return np.where(np.isfinite(scores), scores, 0.0).astype(np.float32)


def _row_top(scores: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """(1, n) the best items of one dense row by (score desc, index asc), -inf padded."""
    from recsys_cli.models.topk import top_indices

    top = top_indices(scores[None, :], min(n, scores.size - 1))
    return top, np.take_along_axis(scores[None, :], top, axis=1)


def _with_categories(affinity: np.ndarray, categories: np.ndarray, seen: float) -> np.ndarray:
    """(1, n_categories) category shares with new events counted: the stored shares
    weigh as much as the new events together, a simple prior the next refit replaces."""
    counts = np.bincount(categories, minlength=affinity.shape[1]).astype(np.float32)[None, : affinity.shape[1]]
    merged = affinity * seen + counts
    total = merged.sum(axis=1, keepdims=True)
    return np.divide(merged, total, out=np.zeros_like(merged), where=total > 0)


def _pairs(
    lists: Mapping[str, tuple[np.ndarray, np.ndarray]],
    own: Mapping[str, Callable[[np.ndarray, np.ndarray], np.ndarray]],
    users: np.ndarray,
    n: int,
    offset: int,
    tables: SideTables,
    affinity: np.ndarray | None = None,
    user_numeric: np.ndarray | None = None,
) -> Pairs:
    """The union of each generator's list per user, with every pair's features:
    each generator's score, its gap to that generator's best and its log rank there,
    the user's affinity to the item's category (`affinity`, rows of `users`; the
    tables' own by default), then item and user features (`user_numeric`, rows of
    `users`, in place of the table's numeric columns)."""
    affinity = tables.affinity[users] if affinity is None else affinity
    user_numeric = tables.users.numeric[users] if user_numeric is None else user_numeric
    tops, best = {}, {}
    for name, (top, top_scores) in lists.items():
        # Ranks and the best score come from the pairs' own scorer, as every pair's
        # score does: a list's scores may come from a batch's matrix product, whose
        # last bits depend on the batch. A gap of 6e-8 instead of 0 once crossed a
        # tree's threshold (a user's probability 0.16 alone, 0.0006 in a batch), and
        # near-equal scores swapped places, and log ranks, from one batch to another.
        tops[name], best[name] = _own_order(np.where(np.isfinite(top_scores), top, 0), own[name])
    union = np.sort(np.concatenate(list(tops.values()), axis=1), axis=1)
    keep = union > 0
    keep[:, 1:] &= union[:, 1:] != union[:, :-1]
    row, col = np.nonzero(keep)
    items = union[row, col]

    numeric = []
    for name in lists:
        score = np.asarray(own[name](row, items), dtype=np.float32)
        rank = _list_rank(tops[name], row, items, n)
        numeric += [score, score - best[name][row], np.log(rank)]
    numeric.append(affinity[row, tables.item_category[items]])
    return Pairs(
        row + offset,
        users[row],
        items,
        np.concatenate([np.stack(numeric, axis=1), tables.items.numeric[items], user_numeric[row]], axis=1).astype(
            np.float32
        ),
        np.concatenate([items[:, None], tables.items.categorical[items], tables.users.categorical[users[row]]], axis=1),
    )


def _own_order(
    top: np.ndarray, scorer: Callable[[np.ndarray, np.ndarray], np.ndarray]
) -> tuple[np.ndarray, np.ndarray]:
    """Each row's listed items (0 = none) re-ordered by their own scorer's score,
    highest first, the lower item id first among equals, and each row's best such
    score (0 for an empty row): the same for a user whatever batch found the list."""
    first = np.zeros(top.shape[0])
    r, c = np.nonzero(top > 0)
    if r.size == 0:
        return top, first
    items = top[r, c]
    scores = np.asarray(scorer(r, items), dtype=np.float32)
    order = np.lexsort((items, -scores, r))
    counts = np.bincount(r, minlength=top.shape[0])
    starts = np.cumsum(counts) - counts
    position = np.arange(r.size) - np.repeat(starts, counts)
    ordered = np.zeros_like(top)
    ordered[r[order], position] = items[order]
    has = counts > 0
    first[has] = scores[order][starts[has]]
    return ordered, first


def _list_rank(top: np.ndarray, row: np.ndarray, items: np.ndarray, n: int) -> np.ndarray:
    """1-based position of each (row, item) pair in row's list `top` (0 = no item),
    n + 1 where the list does not hold it, by a binary search in the lists' sorted
    (row, item) keys: comparing every pair with its whole list cost a fifth of the
    pairs' features at 320 pairs a user."""
    r, c = np.nonzero(top > 0)
    if r.size == 0:
        return np.full(row.size, n + 1, dtype=np.int64)
    stride = int(max(top.max(), items.max(initial=0))) + 1
    keys = r.astype(np.int64) * stride + top[r, c]
    order = np.argsort(keys, kind="stable")  # an item listed twice: its first place
    keys, places = keys[order], c[order] + 1
    wanted = row.astype(np.int64) * stride + items
    at = np.minimum(np.searchsorted(keys, wanted), keys.size - 1)
    return np.where(keys[at] == wanted, places[at], n + 1)


def proposal_rank(pairs: Pairs, n_generators: int) -> np.ndarray:
    """Each pair's best rank in any generator's list (log scale, as its features hold
    it): how hard a negative it is for the ranker."""
    return pairs.numeric[:, 2 : 3 * n_generators : 3].min(axis=1)


def sample_negatives(
    group: np.ndarray,
    labels: np.ndarray,
    rank: np.ndarray,
    negatives: int,
    rng: np.random.Generator,
    droppable: np.ndarray,
    hard_negatives: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Which rows of candidate lists (grouped in runs of `group`) to keep, and their
    weights. Every positive stays; of the negatives, the `hard_negatives` the
    generators ranked highest and `negatives - hard_negatives` drawn at random from
    the rest, each weighted by how many of that rest it stands for (positives and
    hard ones weigh 1). Random ones alone keep a list's mix of easy and hard
    candidates: on a 200k-event shop, 10 hard + 10 random halved the ranker's
    validation NDCG@10 (0.105 against 0.223 with every candidate). A list
    without a positive is dropped where `droppable` (a training list: it teaches a
    ranker nothing), kept otherwise (held-out lists calibrate probabilities).
    Rows come back in their order; the draws follow `rng`, so a seed repeats them."""
    starts = np.r_[0, np.flatnonzero(group[1:] != group[:-1]) + 1]
    run = np.repeat(np.arange(starts.size), np.diff(np.r_[starts, group.size]))
    positive = labels > 0
    n_hard = min(hard_negatives, negatives)
    negative = np.flatnonzero(~positive)
    hard = _first_per_run(negative[np.lexsort((rank[negative], run[negative]))], run, n_hard)
    rest = np.setdiff1d(negative, hard, assume_unique=True)
    drawn = _first_per_run(rest[np.lexsort((rng.random(rest.size), run[rest]))], run, negatives - n_hard)
    keep = positive.copy()
    keep[hard] = keep[drawn] = True
    has_positive = np.bincount(run, weights=positive, minlength=starts.size) > 0
    keep &= has_positive[run] | ~droppable
    weight = np.ones(group.size, np.float32)
    if drawn.size:
        stands_for = np.bincount(run[rest], minlength=starts.size) / np.maximum(
            np.bincount(run[drawn], minlength=starts.size), 1
        )
        weight[drawn] = stands_for[run[drawn]]
    return keep, weight


def _first_per_run(ordered: np.ndarray, run: np.ndarray, n: int) -> np.ndarray:
    """The first `n` rows of each run in `ordered` (rows sorted by run, then preference)."""
    if n <= 0 or ordered.size == 0:
        return ordered[:0]
    r = run[ordered]
    position = np.arange(r.size) - np.searchsorted(r, r, side="left")
    return ordered[position < n]
