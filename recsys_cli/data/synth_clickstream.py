"""Clickstream behaviours of the synthetic shop, each off by default.

A shop's logs are not a ratings matrix: most visitors come on one day only, one
product leads to its complements (a phone to its cases), and people come back to
items they looked at before and buy them then. These are the signals item-to-item
and sequential models live on, so the generator can plant them:

- casual visitors: a share of users is active on a single day, for one or two
  sessions, instead of being drawn by weight every day;
- complements: every item has a few complement items from its category's
  complement category (a fixed category -> category map); the next view of a
  session follows the previous item's complements with some probability, and a
  user's last purchase leads a later session to its complements;
- re-targeting: a share of sessions opens on an item the user viewed (and did
  not buy) on an earlier day, with a higher chance of carting it.

Re-targeting and purchase-led sessions need state across days: `UserMemory`
keeps each user's last `RECENT` viewed items and last purchase, O(n_users) memory
whatever the number of events. Days are generated in order and all draws come
from generators seeded by (seed, day), so the same seed gives the same bytes.
"""

from __future__ import annotations

import numpy as np

RECENT = 5  # viewed items each user's memory holds for re-targeting
CASUAL_SECOND_SESSION = 0.3  # chance a casual visitor comes back later the same day


def complement_items(
    rng: np.random.Generator, item_cat: np.ndarray, item_pop: np.ndarray, n_categories: int, k: int
) -> np.ndarray:
    """(n_items, k) complement item ids: drawn by popularity from the complement
    category of each item's category. The category map is one random cycle, so no
    category complements itself (unless there is only one)."""
    cycle = rng.permutation(n_categories)
    complement_cat = np.empty(n_categories, dtype=np.int64)
    complement_cat[cycle] = np.roll(cycle, -1)
    order = np.argsort(item_cat, kind="stable")
    bounds = np.searchsorted(item_cat[order], np.arange(n_categories + 1))
    out = np.empty((item_cat.size, k), dtype=np.int64)
    for cat in range(n_categories):
        items = order[bounds[cat] : bounds[cat + 1]]
        if items.size == 0:
            continue
        pool = order[bounds[complement_cat[cat]] : bounds[complement_cat[cat] + 1]]
        if pool.size == 0:  # an empty complement category: complements come from anywhere
            pool = np.arange(item_cat.size)
        cdf = np.cumsum(item_pop[pool])
        draws = np.searchsorted(cdf, rng.random(items.size * k) * cdf[-1], side="right")
        out[items] = pool[np.minimum(draws, pool.size - 1)].reshape(items.size, k)
    return out


def casual_visits(
    rng: np.random.Generator, signup_day: np.ndarray, n_days: int, share: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Who visits only once, and when: (is_casual per user, the casual sessions'
    users ordered by day, day bounds into that array). A visitor's day is on or
    after their sign-up; one in `1 / CASUAL_SECOND_SESSION` comes back that day."""
    n_users = signup_day.size
    casual = rng.random(n_users) < share
    users = np.flatnonzero(casual)
    first = np.clip(signup_day[users], 0, n_days - 1)
    day = first + np.floor(rng.random(users.size) * (n_days - first)).astype(np.int64)
    sessions = 1 + (rng.random(users.size) < CASUAL_SECOND_SESSION)
    users, day = np.repeat(users, sessions), np.repeat(day, sessions)
    order = np.argsort(day, kind="stable")
    return casual, users[order], np.searchsorted(day[order], np.arange(n_days + 1))


class UserMemory:
    """What each user did on earlier days: the last `RECENT` items viewed and not
    bought (oldest first, -1 for empty slots) and the last item bought (-1: none)."""

    def __init__(self, n_users: int) -> None:
        self.recent = np.full((n_users, RECENT), -1, dtype=np.int64)
        self.last_bought = np.full(n_users, -1, dtype=np.int64)

    def pick_recent(self, rng: np.random.Generator, users: np.ndarray) -> np.ndarray:
        """One remembered item per user, uniformly among their slots; -1 for none."""
        held = self.recent[users] >= 0
        n_held = held.sum(axis=1)
        k = np.floor(rng.random(users.size) * n_held).astype(np.int64)
        slot = np.argmax(np.cumsum(held, axis=1) > k[:, None], axis=1)
        return np.where(n_held > 0, self.recent[users, slot], -1)

    def remember(self, users: np.ndarray, items: np.ndarray, viewed: np.ndarray, bought: np.ndarray) -> None:
        """Take in one day's written events, in time order."""
        self._push_views(users[viewed], items[viewed])
        b_user, b_item = users[bought], items[bought]
        if b_user.size:
            self.last_bought[b_user] = b_item  # the last write of a repeated index wins: the latest purchase
            rows = self.recent[b_user]
            rows[rows == b_item[:, None]] = -1
            self.recent[b_user] = rows

    def _push_views(self, users: np.ndarray, items: np.ndarray) -> None:
        """Each touched user's slots become the last `RECENT` of (old slots, today's views)."""
        if users.size == 0:
            return
        touched = np.unique(users)
        old = self.recent[touched]
        held = old >= 0
        all_users = np.concatenate([np.repeat(touched, RECENT)[held.ravel()], users])
        all_items = np.concatenate([old[held], items])
        seq = np.arange(all_users.size)  # old slots first (oldest first), then today's views in order
        order = np.lexsort((seq, all_users))
        all_users, all_items = all_users[order], all_items[order]
        end = np.searchsorted(all_users, touched, side="right")
        from_end = end[np.searchsorted(touched, all_users)] - np.arange(all_users.size)  # 1 for each user's last
        keep = from_end <= RECENT
        fresh = np.full((touched.size, RECENT), -1, dtype=np.int64)
        fresh[np.searchsorted(touched, all_users[keep]), RECENT - from_end[keep]] = all_items[keep]
        self.recent[touched] = fresh


def follow_complements(
    rng: np.random.Generator,
    complements: np.ndarray,
    launch_day: np.ndarray,
    day: int,
    v_sess: np.ndarray,
    v_item: np.ndarray,
    share: float,
) -> np.ndarray:
    """Views after a session's first: with probability `share`, one of the previous
    view's complements (if launched by `day`) instead of the independent draw.
    Positions are filled in order, so chains of complements form."""
    out = v_item.copy()
    pos = np.arange(v_sess.size) - np.searchsorted(v_sess, v_sess, side="left")
    follow = np.flatnonzero((rng.random(v_sess.size) < share) & (pos > 0))
    pick = rng.integers(0, complements.shape[1], follow.size)
    by_pos = np.argsort(pos[follow], kind="stable")
    follow, pick = follow[by_pos], pick[by_pos]
    bounds = np.searchsorted(pos[follow], np.arange(1, int(pos.max(initial=0)) + 2))
    for lo, hi in zip(bounds[:-1], bounds[1:], strict=True):
        idx = follow[lo:hi]
        candidate = complements[out[idx - 1], pick[lo:hi]]
        ok = launch_day[candidate] <= day
        out[idx[ok]] = candidate[ok]
    return out
