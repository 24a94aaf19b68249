"""User ids a person hands a command in a file (`recsys recommend --users FILE`):
read them, and find each one's pseudonym in the lake's id space.

Why this exists: the lake holds only keyed pseudonyms, so the raw ids of a CRM
export match nothing, and every user would silently be "new". A raw id is
pseudonymised with the lake's own key (its fingerprint, recorded in the lake's
manifest, must match the key in the environment); an id that already is a lake
pseudonym is taken as it is. The ids themselves never appear in a message:
only counts, the file and the column do.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from recsys_cli.data.lake import read_manifest
from recsys_cli.data.pseudonymise import DEVELOPMENT_KEY, PiiKey, key_of, pseudonym_table
from recsys_cli.data.read_errors import polars_error_summary
from recsys_cli.data.schema import Col
from recsys_cli.errors import LakeError, SourceError

PARQUET_MAGIC = b"PAR1"
COMPRESSED = {
    b"\x1f\x8b": "gzip",
    b"BZh": "bzip2",
    b"\xfd7zXZ": "xz",
    b"PK\x03\x04": "zip",
    b"\x28\xb5\x2f\xfd": "zstd",
}


def read_user_ids(path: Path) -> pl.Series:
    """Distinct non-empty values of the file's `user_id` column, in file order, as text.

    CSV (with a header naming `user_id`) or Parquet, told apart by content, not name.
    """
    if not path.exists():
        raise SourceError(f"{path}: users file not found")
    if not path.is_file():
        raise SourceError(f"{path}: users file is not a file")
    with open(path, "rb") as fh:
        head = fh.read(8)
    if not head:
        raise SourceError(f"{path}: users file is empty (expected a header naming {Col.USER}, then one id a line)")
    for magic, kind in COMPRESSED.items():
        if head.startswith(magic):
            raise SourceError(f"{path}: users file is {kind}-compressed; decompress it first")
    frame = _read(path, parquet=head.startswith(PARQUET_MAGIC))
    if Col.USER not in frame.columns:
        # Never the names found: without a header, the first "name" is someone's id.
        raise SourceError(
            f"{path}: no {Col.USER} column among its {frame.width} column(s); "
            f"the first line must be a header naming {Col.USER}"
        )
    ids = frame[Col.USER]
    if not (ids.dtype == pl.String or ids.dtype.is_integer()):
        raise SourceError(f"{path}: column {Col.USER} holds {ids.dtype}, expected text or whole numbers")
    ids = ids.cast(pl.String)
    ids = ids.filter(ids.str.strip_chars().str.len_chars() > 0).unique(maintain_order=True)
    if ids.is_empty():
        raise SourceError(f"{path}: no user ids (the file has a header but no non-empty {Col.USER} values)")
    return ids


def _read(path: Path, parquet: bool) -> pl.DataFrame:
    try:
        if parquet:
            return pl.read_parquet(path)
        return pl.read_csv(path, infer_schema=False, encoding="utf8-lossy")
    except pl.exceptions.NoDataError:
        raise SourceError(f"{path}: users file is empty (expected a header naming {Col.USER})") from None
    except (pl.exceptions.PolarsError, OSError) as exc:
        kind = "Parquet" if parquet else "CSV"
        raise SourceError(f"{path}: users file cannot be read as {kind} ({polars_error_summary(exc)})") from exc


def lake_key(lake: Path | None) -> PiiKey | None:
    """The key that pseudonymised the lake's user ids, when this process has it.

    The development key when the lake says it used it; else the key in the
    environment variable the lake's ingest config named, refused when its
    fingerprint is not the one the lake recorded. None without a lake manifest
    or a key: then only already-pseudonymised ids can match.
    """
    manifest = _manifest(lake)
    if manifest is None:
        return None
    pii: dict[str, Any] = manifest.get("pii") or {}
    if pii.get("development_key"):
        return PiiKey(DEVELOPMENT_KEY.encode(), is_development=True)
    env_var = str(((manifest.get("config") or {}).get("pii") or {}).get("key_env") or "RECSYS_PII_KEY")
    return key_of(env_var, pii.get("key_fingerprint"), str(lake))


def _manifest(lake: Path | None) -> dict[str, Any] | None:
    if lake is None or not (lake / "manifest.json").is_file():
        return None
    try:
        return read_manifest(lake)
    except LakeError:
        return None


@dataclass(frozen=True)
class MatchedUsers:
    """Each given id's id in the lake (pseudonymised where it was raw), and counts."""

    lake_ids: pl.Series  # aligned with the given ids; only for the model, never written (unknown ids stay as given)
    unknown: int
    raw: int  # ids that were raw and are known through their pseudonym
    pseudonymous: int  # ids that already were lake pseudonyms

    @property
    def only_pseudonyms(self) -> bool:
        """Every id was a lake pseudonym: none of them is a raw identifier."""
        return self.pseudonymous == self.lake_ids.len()


def match_user_ids(given: pl.Series, known: pl.Series, key: PiiKey | None, path: Path) -> MatchedUsers:
    """Pseudonymise raw ids, keep pseudonymous ones, and count those the model does not know.

    An id is taken as raw when its pseudonym (as given, or without surrounding
    spaces) is known, as a pseudonym when it is known itself; both at once is
    ambiguous and refused. None known at all is refused too: that is a file of
    another shop, or a key that is not the lake's, not a batch of new customers.
    """
    frame = _with_pseudonyms(pl.DataFrame({"given": given}), key)
    known_set = known.unique()
    pseudo = pl.when(pl.col("p_given").is_in(known_set)).then(pl.col("p_given")).otherwise(pl.col("p_stripped"))
    frame = frame.with_columns(pseudo.alias("pseudo")).with_columns(
        pl.col("pseudo").is_in(known_set).fill_null(False).alias("as_raw"),
        pl.col("given").is_in(known_set).alias("as_is"),
    )
    ambiguous = frame["as_raw"] & frame["as_is"]
    if ambiguous.any():
        raise SourceError(
            f"{path}: {int(ambiguous.sum())} user id(s) match both as a raw id and as a pseudonym; "
            "give one kind of id per file"
        )
    unknown = int((~(frame["as_raw"] | frame["as_is"])).sum())
    if unknown == given.len():
        hint = (
            ""
            if key is not None
            else " (raw ids match only through the lake's key, and the run's lake or that key was not found)"
        )
        raise SourceError(f"{path}: none of its {given.len():,} user ids is known to this run's model{hint}")
    lake_ids = frame.select(
        pl.when(pl.col("as_raw")).then(pl.col("pseudo")).otherwise(pl.col("given")).alias(Col.USER)
    )[Col.USER]
    return MatchedUsers(lake_ids, unknown, int(frame["as_raw"].sum()), int(frame["as_is"].sum()))


def _with_pseudonyms(frame: pl.DataFrame, key: PiiKey | None) -> pl.DataFrame:
    """`p_given`, `p_stripped`: pseudonyms of each id as given and without surrounding spaces (null without a key)."""
    frame = frame.with_columns(pl.col("given").str.strip_chars().alias("stripped"))
    if key is None:
        return frame.with_columns(pl.lit(None, pl.String).alias("p_given"), pl.lit(None, pl.String).alias("p_stripped"))
    table = pseudonym_table(pl.concat([frame["given"], frame["stripped"]]), key, "user_id")
    for column in ("given", "stripped"):
        lookup = table.rename({"raw": column, "pseudonym": f"p_{column}"})
        frame = frame.join(lookup, on=column, how="left", maintain_order="left")
    return frame
