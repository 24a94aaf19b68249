"""Which columns of a raw table hold personal data, and what ingest does with them.

Why by name: ingest streams the events and never looks at every value, and a
column's header is what a data owner declares and reviews. Names are compared
after normalising them into lower-case words (`E-Mail Address`, `emailAddress`
and `email_address` are all `e_mail_address`/`email_address`), so a spelling
variant cannot slip a column past a rule written for another spelling.

The rules live in config (`conf/pii/*.yaml`), per action:

* `personal_columns`: exact names (any case or spelling) -> `drop` or `hash`;
* `personal_patterns`: regular expressions over the name's words, per action,
  for every table; `personal_patterns_by_table` adds some for one table only
  (a user's `name` is personal, a product's is not);
* `safe_columns`: per table, the columns declared free of personal data.

Development applies the patterns. Production (`fail_closed`) guesses nothing:
every column that is not part of the contract must be declared, safe in
`safe_columns` or personal in `personal_columns`, or ingest refuses to start.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, cast

import polars as pl

from recsys_cli.data.schema import EVENTS_SCHEMA, Col
from recsys_cli.data.sources.base import RAGGED
from recsys_cli.errors import ConfigError, PersonalDataError

Action = Literal["drop", "hash"]
ACTIONS: tuple[Action, ...] = ("drop", "hash")
TABLES = ("events", "items", "users")
# Contract columns are never personal columns: user ids are pseudonymised on their
# own, and the rest are the lake's typed core. The lineage columns a reader adds
# (file, line, its verdict on the record) are ours, not the source's.
LINEAGE = (Col.LINE, Col.FILE, RAGGED)
CONTRACT: dict[str, frozenset[str]] = {
    "events": frozenset([*EVENTS_SCHEMA.names(), *LINEAGE]),
    "items": frozenset([Col.ITEM, Col.CATEGORY, Col.BRAND, Col.PRICE, Col.STOCK, Col.LAUNCHED_AT, *LINEAGE]),
    "users": frozenset([Col.USER, Col.SIGNUP_AT, *LINEAGE]),
}
# Quarantine reasons of records the reader could not split into fields: their values
# may sit under the wrong column (an e-mail shifted into `item_id`), so the quarantine
# keeps only where they were and why, never their text.
BROKEN_RECORD = ("too_few_fields", "ragged_row", "unterminated_quote", "bad_quote", "bad_id", "invalid_utf8")


@dataclass(frozen=True)
class Personal:
    """What to do with one table's personal columns: drop them, or replace them by pseudonyms."""

    drop: frozenset[str] = frozenset()
    hash: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Rule:
    """One pattern of one action, compiled for both spellings of a name."""

    action: Action
    pattern: str
    words: re.Pattern[str] = field(compare=False, repr=False)
    compact: re.Pattern[str] = field(compare=False, repr=False)


def words(column: str) -> str:
    """A column name as lower-case words joined by `_`.

    >>> [words(c) for c in ("E-Mail Address", "userEmail", "IPAddress", "Téléphone", " zip.code ")]
    ['e_mail_address', 'user_email', 'ip_address', 'telephone', 'zip_code']
    """
    text = unicodedata.normalize("NFKD", column)
    text = "".join(ch for ch in text if not unicodedata.combining(ch))
    text = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", text)
    text = re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1_\2", text)
    return re.sub(r"[^0-9a-z]+", "_", text.lower()).strip("_")


def compile_rules(patterns: Mapping[str, Sequence[str]] | None) -> tuple[Rule, ...]:
    """Patterns per action -> rules; a pattern matches whole words of a name, or the
    whole name written without separators (`emailaddress`, `PhoneNumber`)."""
    rules = []
    for action, items in (patterns or {}).items():
        if action not in ACTIONS:
            raise ConfigError(f"pii patterns: action must be 'drop' or 'hash', got '{action}'")
        for pattern in items or ():
            try:
                word_re = re.compile(rf"(?:^|_)({pattern})(?=_|$)")
                compact_re = re.compile(rf"(?:{pattern})")
            except re.error as exc:
                raise ConfigError(f"pii patterns: '{pattern}' is not a regular expression ({exc})") from None
            rules.append(Rule(cast(Action, action), str(pattern), word_re, compact_re))
    return tuple(rules)


def classify(column: str, rules: Iterable[Rule]) -> Action | None:
    """The action the rules give a column name, or None when no rule matches.

    The longest match decides (`ip_address` is an IP address to hash, not a
    postal address to drop); on a tie the stricter action, drop, wins.

    >>> rules = compile_rules({"drop": ["e_?mail", "addr(ess)?"], "hash": ["ip(_?addr(ess)?)?"]})
    >>> [classify(c, rules) for c in ("Email", "E-Mail Address", "IPAddress", "shipping_address", "price")]
    ['drop', 'drop', 'hash', 'drop', None]
    """
    name = words(column)
    flat = name.replace("_", "")
    best: tuple[int, bool] | None = None
    action: Action | None = None
    for rule in rules:
        lengths = [len(m.group(1)) for m in rule.words.finditer(name)]
        if flat and rule.compact.fullmatch(flat):
            lengths.append(len(name))
        if not lengths:
            continue
        rank = (max(lengths), rule.action == "drop")
        if best is None or rank > best:
            best, action = rank, rule.action
    return action


@dataclass(frozen=True)
class PersonalPolicy:
    """The config's rules, applied to the columns of one table of one file."""

    rules: tuple[Rule, ...] = ()
    table_rules: Mapping[str, tuple[Rule, ...]] = field(default_factory=dict)
    exact: Mapping[str, Action] = field(default_factory=dict)  # by normalised name
    safe: Mapping[str, frozenset[str]] = field(default_factory=dict)  # table -> normalised names
    fail_closed: bool = False

    def action(self, column: str, table: str) -> Action | None:
        """Drop, hash or keep (None) one column of a table."""
        if column in CONTRACT.get(table, ()):
            return None
        name = words(column)
        if name in self.exact:
            return self.exact[name]
        if name in self.safe.get(table, frozenset()) or self.fail_closed:
            return None
        return classify(column, (*self.rules, *self.table_rules.get(table, ())))

    def plan(self, columns: Sequence[str], table: str, file: str) -> Personal:
        """The columns of `file` to drop and to hash; in production, refuse any column
        that is neither contract, declared safe, nor declared personal."""
        if self.fail_closed:
            self._refuse_undeclared(columns, table, file)
        actions = {c: self.action(c, table) for c in columns}
        return Personal(
            drop=frozenset(c for c, a in actions.items() if a == "drop"),
            hash=frozenset(c for c, a in actions.items() if a == "hash"),
        )

    def _refuse_undeclared(self, columns: Sequence[str], table: str, file: str) -> None:
        safe = self.safe.get(table, frozenset())
        contract = CONTRACT.get(table, frozenset())
        undeclared = [c for c in columns if c not in contract and words(c) not in self.exact and words(c) not in safe]
        if not undeclared:
            return
        guesses = {c: classify(c, (*self.rules, *self.table_rules.get(table, ()))) for c in undeclared}
        looks = [f"'{c}' looks personal ({a})" for c, a in guesses.items() if a]
        listed = ", ".join(f"'{c}'" for c in undeclared)
        safe_list = ",".join([*sorted(safe), *dict.fromkeys(words(c) for c in undeclared)])
        first = next((c for c in undeclared if guesses[c]), undeclared[0])
        raise PersonalDataError(
            f"{file}: {table} column(s) {listed} not declared (pii=production refuses undeclared columns"
            + (f"; {', '.join(looks)}" if looks else "")
            + f"): drop or hash one with +pii.personal_columns.{words(first)}={guesses[first] or 'drop'}, "
            f"or declare them safe with pii.safe_columns.{table}=[{safe_list}]"
        )


def policy_from_config(pii: Mapping[str, Any]) -> PersonalPolicy:
    """A `PersonalPolicy` from the composed `pii` config group (a plain mapping)."""
    exact = {words(str(c)): a for c, a in (pii.get("personal_columns") or {}).items()}
    bad = {c: a for c, a in exact.items() if a not in ACTIONS}
    if bad:
        raise ConfigError(f"pii.personal_columns: actions must be 'drop' or 'hash', got {bad}")
    safe_cfg = pii.get("safe_columns") or {}
    unknown = sorted(set(safe_cfg) - set(TABLES))
    if unknown:
        raise ConfigError(f"pii.safe_columns: unknown table(s) {unknown}; tables are {list(TABLES)}")
    by_table = pii.get("personal_patterns_by_table") or {}
    return PersonalPolicy(
        rules=compile_rules(pii.get("personal_patterns")),
        table_rules={str(t): compile_rules(p) for t, p in by_table.items()},
        exact=cast(dict[str, Action], exact),
        safe={str(t): frozenset(words(str(c)) for c in (cols or ())) for t, cols in safe_cfg.items()},
        fail_closed=bool(pii.get("fail_closed", False)),
    )


def blank_broken_records(columns: Iterable[str]) -> list[pl.Expr]:
    """`columns` of a quarantine frame, nulled in rows whose reason says the record is
    broken (`BROKEN_RECORD`, with or without a `:column` suffix)."""
    broken = pl.col(Col.REASON).str.replace(r":.*$", "").is_in(list(BROKEN_RECORD)).fill_null(False)
    return [pl.when(broken).then(None).otherwise(pl.col(c)).alias(c) for c in columns]
