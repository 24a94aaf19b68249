"""What the ranker's columns are called, the groups a data scientist reasons
about them in, and which of them an ablation (`model.ablate`) takes away.

A candidate pair's features (`candidates._pairs`) are numeric columns (per
generator its score, gap to its best and log rank; the user's category affinity;
the item's then the user's numeric side columns) followed by categorical ones
(the item id; the item's then the user's categorical side columns). The side
columns come from whatever the feature set's user and item tables hold, so the
groups are rules over column names that hold on any data set: a column belongs
to exactly one group, and one no rule knows falls in `item_other` / `user_other`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence

from recsys_cli.errors import ConfigError

GENERATOR_COLUMNS = ("score", "gap", "log_rank")
AFFINITY = "category_affinity"
ITEM_ID = "item_id"
# Characters LightGBM refuses in a feature name (JSON's), and whitespace.
_UNSAFE = re.compile(r'[\s"\',:\[\]{}]')

# (group, pattern over the bare side column name), first match wins. A window
# suffix is `{w:g}d` (`n_view_7d`, `spend_0.5d`), as `features/aggregates.py` writes it.
_WINDOW = r"\d+(\.\d+)?d"
ITEM_RULES: tuple[tuple[str, str], ...] = (
    ("item_rating", r"(avg_rating|n_ratings|rating_.*)"),
    ("item_popularity", rf"(events_total|n_[a-z_]+_{_WINDOW}|trend_.*|conversion(_.*)?)"),
    ("item_age", r"(age_days|first_seen_days|last_seen_days|launched_.*)(_bucket)?"),
    ("item_attributes", r"(category|brand|price|stock|release_year|genres?|color|size)(_bucket)?"),
)
USER_RULES: tuple[tuple[str, str], ...] = (
    ("user_profile", r"profile_.*"),  # `model.user_profile`: item columns averaged over the history
    ("user_demographics", r"(age|age_bucket|gender|region|occupation|country|city|signup_.*|tenure_.*)"),
    ("user_taste", r"(price_affinity|top_category|top_category_share|.*_affinity)"),
    (
        "user_activity",
        rf"(events_total|n_[a-z_]+_{_WINDOW}|active_days_.*|recency_days|events_per_session|activity_level"
        r"|cart_abandonment_.*|conversion_.*|spend_.*)",
    ),
)
# Every feature group there is, in the order they are reported; a data set may leave some empty.
GROUPS: tuple[str, ...] = (
    AFFINITY,
    ITEM_ID,
    *(g for g, _ in ITEM_RULES),
    "item_other",
    *(g for g, _ in USER_RULES),
    "user_other",
)


def column_names(
    generators: Sequence[str],
    item_categorical: Sequence[str],
    item_numeric: Sequence[str],
    user_categorical: Sequence[str],
    user_numeric: Sequence[str],
) -> tuple[list[str], list[str]]:
    """(numeric, categorical) names of a candidate pair's columns, in their order."""
    numeric = [f"{g}.{c}" for g in generators for c in GENERATOR_COLUMNS]
    numeric += [AFFINITY, *(f"item.{_safe(c)}" for c in item_numeric), *(f"user.{_safe(c)}" for c in user_numeric)]
    categorical = [ITEM_ID, *(f"item.{_safe(c)}" for c in item_categorical)]
    categorical += [f"user.{_safe(c)}" for c in user_categorical]
    return numeric, categorical


def side_names(names: Sequence[str], n_categorical: int, n_numeric: int) -> tuple[list[str], list[str]]:
    """A side table's (categorical, numeric) column names; for a model saved before
    they were kept, placeholders by position (`categorical_0`, `numeric_0`)."""
    if len(names) == n_categorical + n_numeric:
        return list(names[:n_categorical]), list(names[n_categorical:])
    return [f"categorical_{j}" for j in range(n_categorical)], [f"numeric_{j}" for j in range(n_numeric)]


def group_of(name: str, generators: Iterable[str]) -> str:
    """The one group a column belongs to: its generator's key, or a side group by rule."""
    head, _, rest = name.partition(".")
    if rest in GENERATOR_COLUMNS and head in set(generators):
        return head
    if name in (AFFINITY, ITEM_ID):
        return name
    rules = {"item": ITEM_RULES, "user": USER_RULES}.get(head)
    if rules is None:
        raise ValueError(f"not a ranker column: {name!r}")
    return next((group for group, pattern in rules if re.fullmatch(pattern, rest)), f"{head}_other")


def feature_groups(names: Sequence[str], generators: Sequence[str]) -> dict[str, list[str]]:
    """{group: its columns} over `names`: one group per generator, in their order,
    then the side groups in `GROUPS` order; groups without a column are left out."""
    found: dict[str, list[str]] = {g: [] for g in (*generators, *GROUPS)}
    for name in names:
        found[group_of(name, generators)].append(name)
    return {g: columns for g, columns in found.items() if columns}


def known_ablations(generators: Iterable[str]) -> list[str]:
    return [*generators, *GROUPS]


def unknown_ablations(names: Iterable[object], generators: Iterable[str]) -> list[str]:
    """The names in `names` that are neither a generator key nor a feature group."""
    known = set(known_ablations(generators))
    return [str(n) for n in names if n not in known]


def check_ablate(ablate: object, generators: Mapping[str, object]) -> list[str]:
    """The names to drop, each a generator key or a feature group; anything else, a
    name given twice, or every generator at once is one line naming `model.ablate`."""
    if ablate is None:
        return []
    if isinstance(ablate, str) or not isinstance(ablate, Sequence):
        raise ConfigError(f"model.ablate: give a list of generators or feature groups, got {ablate!r}")
    names = list(ablate)
    unknown = unknown_ablations(names, generators)
    if unknown:
        known = ", ".join(known_ablations(generators))
        raise ConfigError(f"model.ablate: unknown name(s) {', '.join(unknown)}; known: {known}")
    if len(set(names)) != len(names):
        raise ConfigError(f"model.ablate names a generator or group twice: {names}")
    if set(generators) <= set(names):
        raise ConfigError("model.ablate drops every candidate generator: the ranker would have no candidates")
    return names


def kept_columns(names: Sequence[str], generators: Sequence[str], dropped: Iterable[str]) -> list[int]:
    """Positions of the columns in `names` whose group is not `dropped`."""
    gone = set(dropped)
    return [j for j, n in enumerate(names) if group_of(n, generators) not in gone]


def _safe(name: str) -> str:
    return _UNSAFE.sub("_", name)
