"""Data drift: has a feature's distribution moved between a reference sample (the
production model's training window) and a current one (the newest window)?

Each feature gets two effect sizes and one test, on binned counts:

- **continuous** columns (floats, dates and times, and integers with more than
  `max_categories` distinct values over both samples): the bins are cut at the
  reference's `bins`-quantiles, (-inf, q1], (q1, q2], ..., (q_last, inf), with
  tied quantiles merged. The test is Kolmogorov-Smirnov's two-sample test
  (`scipy.stats.ks_2samp`) on the values that are present.
- **categorical** columns (strings, booleans, categoricals and enums, and integers
  with at most `max_categories` distinct values, such as hour of day or small
  counts, whose many ties would make KS conservative): one bin per value of
  either sample, so a value new in the current sample is a bin of its own. Past
  `max_categories` values, the most frequent over both samples are kept and the
  rest are pooled as one bin. The test is chi-squared homogeneity
  (`scipy.stats.chi2_contingency`) on the 2 x k count table. Before the test, the
  rarest bins are pooled until every expected count is at least 5 (Cochran's
  rule: below that the chi-squared approximation no longer holds).

Missing values (nulls, and NaN in floats) are a bin of their own for both kinds,
so a column that becomes mostly null moves PSI and JS. For a categorical column
missing is one more category of the chi-squared table. KS only sees values, so
for a continuous column with missing values in either sample the missing share is
tested too (Fisher's exact test on missing vs present), and the feature's p-value
is the Bonferroni bound over its two tests, min(1, 2 min(p_ks, p_missing)).

The effect sizes are computed on the shares r (reference) and c (current) of the
bins:

- PSI = sum (c - r) ln(c / r). A share below `EPS` = 1e-4 is raised to 1e-4, the
  usual convention, so that an empty bin on one side (a new category, values out
  of the reference's range) gives a large but finite PSI.
- JS is the Jensen-Shannon distance (`scipy.spatial.distance.jensenshannon`,
  base 2). It lies in [0, 1] and needs no epsilon.

**The alert rule.** One run tests many features, and a test at level alpha per
feature would raise a false alarm somewhere most days. A feature is flagged only
when all three of these hold:

1. Both samples have at least `min_samples` rows. Smaller features are reported
   but never flagged, and they are left out of the correction below.
2. Its Holm-adjusted p-value over every feature of the run with enough rows is at
   most `alpha`. This keeps the family-wise error (the chance that even one
   unshifted feature is flagged) at alpha.
3. Its effect is large: PSI >= `psi_threshold` or JS >= `js_threshold`. PSI 0.2
   is the usual "significant shift". On deciles it is about a 0.45-sd mean shift
   of a normal feature, and a category doubling from 25% to 50% of rows gives
   0.27. JS 0.2 is about the same size as PSI 0.2.

The test and the effect size need each other. At the sizes of a shop's feature
tables (10^5 users), a test rejects shifts far too small to act on. With a few
hundred rows, an effect size of 0.2 appears by chance alone: the PSI of two
samples of one distribution is about (bins - 1)(1/n + 1/m).

**Item popularity and category mix** (`shares.py`, `share_drift`) compare shares of events
between two windows with PSI and JS. The `distribution_bins` keys with the most
events over both windows are bins of their own, and the rest are pooled into one
bin. Capping the bins keeps the noise floor (bins - 1)(1/n + 1/m) small at a
window's event counts. These are flagged on effect size alone. Events are
clustered by user and session, so a test that treated them as independent draws
would be overconfident.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np
import polars as pl
from numpy.typing import ArrayLike, NDArray
from scipy import stats
from scipy.spatial.distance import jensenshannon

from recsys_cli.data.schema import Col
from recsys_cli.evaluation.significance import holm

EPS = 1e-4  # floor of a bin's share in PSI
MIN_EXPECTED = 5.0  # Cochran's rule for the chi-squared test
CONTINUOUS = "continuous"
CATEGORICAL = "categorical"
KEYS = (Col.USER, Col.ITEM, Col.SESSION)  # identifiers, never compared as features
_SIDE = "_current"

FEATURE_SCHEMA = pl.Schema(
    {
        "feature": pl.String,
        "kind": pl.String,
        "n_reference": pl.Int64,
        "n_current": pl.Int64,
        "psi": pl.Float64,
        "js": pl.Float64,
        "statistic": pl.Float64,
        "p_value": pl.Float64,
        "p_holm": pl.Float64,
        "missing_reference": pl.Float64,
        "missing_current": pl.Float64,
        "flagged": pl.Boolean,
        "reason": pl.String,
    }
)


@dataclass(frozen=True)
class DriftThresholds:
    """When drift is flagged (`monitor.drift` in conf/monitor/default.yaml). A
    threshold of None switches that effect size off."""

    alpha: float = 0.05
    psi_threshold: float | None = 0.2
    js_threshold: float | None = 0.2
    bins: int = 10
    min_samples: int = 200
    max_categories: int = 25
    distribution_bins: int = 100
    top_movers: int = 10


@dataclass(frozen=True)
class DistributionDrift:
    """How the shares of events over one key (items, categories) moved between two
    windows, with the keys whose share changed most."""

    name: str
    key: str
    n_reference: int
    n_current: int
    psi: float | None
    js: float | None
    flagged: bool
    reason: str
    movers: pl.DataFrame  # key, events_/share_reference, events_/share_current, change

    def to_json(self) -> dict[str, Any]:
        plain = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "movers"}
        return {**plain, "movers": self.movers.to_dicts()}


# ----------------------------------------------------------------------------- effect sizes


def psi(reference: ArrayLike, current: ArrayLike, eps: float = EPS) -> float:
    """Population stability index of two share vectors over the same bins, with
    shares below `eps` raised to it.

    >>> round(psi([0.5, 0.5], [0.25, 0.75]), 4)  # -0.25 ln 0.5 + 0.25 ln 1.5
    0.2747
    """
    r = np.maximum(np.asarray(reference, dtype=np.float64), eps)
    c = np.maximum(np.asarray(current, dtype=np.float64), eps)
    return float(np.sum((c - r) * np.log(c / r)))


def effects(counts: NDArray[Any]) -> tuple[float | None, float | None]:
    """PSI and JS distance of a 2 x k count table's rows (None when a row is empty)."""
    totals = counts.sum(axis=1)
    if not totals.all():
        return None, None
    r, c = counts / totals[:, None]
    js = float(jensenshannon(r, c, base=2))
    return psi(r, c), 0.0 if math.isnan(js) else js  # identical rows can round to sqrt(-0)


# ----------------------------------------------------------------------------- tests


def _pool_rare(counts: NDArray[Any]) -> NDArray[Any]:
    """Columns of a 2 x k table with the smallest pooled into one, until every
    expected count (row total x column total / n) is at least MIN_EXPECTED."""
    totals = counts.sum(axis=1)
    need = MIN_EXPECTED * totals.sum() / totals.min()  # a column's total that meets the rule in both rows
    pooled = counts.sum(axis=0)
    order = np.argsort(pooled, kind="stable")
    rare = int((pooled < need).sum())
    if rare == 0:
        return counts
    merge = max(rare, int(np.searchsorted(np.cumsum(pooled[order]), need)) + 1)
    return np.column_stack([counts[:, order[merge:]], counts[:, order[:merge]].sum(axis=1)])


def _chi2(counts: NDArray[Any]) -> tuple[float | None, float | None]:
    """Chi-squared homogeneity statistic and p-value. p = 1 when pooling leaves one
    column: nothing testable differs."""
    if not counts.sum(axis=1).all():
        return None, None
    table = _pool_rare(counts)
    if table.shape[1] < 2:
        return None, 1.0
    result = stats.chi2_contingency(table)
    return float(result.statistic), float(result.pvalue)


def _ks_and_missing(
    reference: NDArray[Any], current: NDArray[Any], missing: NDArray[Any], totals: NDArray[Any]
) -> tuple[float | None, float | None]:
    """KS statistic on the values present and the feature's p-value: KS's, or with
    missing values anywhere the Bonferroni bound over KS and Fisher's exact test
    of the missing shares."""
    statistic, p_values = None, []
    if reference.size and current.size:
        # Exact p-values cost about n x m; past 10^6 pairs the asymptotic law is as good.
        method = "exact" if reference.size * current.size <= 1_000_000 else "asymp"
        ks = stats.ks_2samp(reference, current, method=method)
        statistic, p_values = float(ks.statistic), [float(ks.pvalue)]
    if missing.any() and totals.all():
        p_values.append(float(stats.fisher_exact(np.column_stack([missing, totals - missing])).pvalue))
    return statistic, min(1.0, len(p_values) * min(p_values)) if p_values else None


# ----------------------------------------------------------------------------- features


def feature_drift(
    reference: pl.DataFrame,
    current: pl.DataFrame,
    thresholds: DriftThresholds | None = None,
    columns: Sequence[str] | None = None,
) -> pl.DataFrame:
    """One row per feature (columns of FEATURE_SCHEMA): its kind, sample sizes,
    PSI, JS, test statistic (KS D or chi-squared), p-value, Holm-adjusted p-value
    (null when the feature has too few rows to judge), missing shares, whether it
    is flagged and why.

    `columns` defaults to the reference's columns other than user, item and
    session ids. Pass ages (days before the cutoff) rather than timestamps: two
    cutoffs' timestamps differ by construction. The kind follows the reference's
    type, and the current sample is cast to it. A column absent from `current`
    counts as all missing there, and so does a current value that does not fit
    the reference's type.
    """
    t = thresholds or DriftThresholds()
    names = _feature_columns(reference, columns)
    reference, current = reference.select(names), _aligned(current, reference.schema, names)
    kinds = _kinds(reference, current, t.max_categories)
    continuous = [c for c in names if kinds[c] == CONTINUOUS]
    categorical = [c for c in names if kinds[c] == CATEGORICAL]
    rows = {
        **_continuous_rows(reference, current, continuous, t.bins),
        **_categorical_rows(reference, current, categorical, t.max_categories),
    }
    table = pl.DataFrame([rows[c] for c in names], schema=FEATURE_SCHEMA, orient="row")
    return _decide(table, t)


def _feature_columns(reference: pl.DataFrame, columns: Sequence[str] | None) -> list[str]:
    if columns is None:
        return [c for c, t in reference.schema.items() if c not in KEYS and not t.is_nested() and t != pl.Binary]
    unknown = [c for c in columns if c not in reference.columns]
    if unknown:
        raise ValueError(f"drift: no column {unknown[0]!r} in the reference sample")
    return list(columns)


def _is_text(dtype: pl.DataType) -> bool:
    return dtype == pl.String or dtype == pl.Null or isinstance(dtype, pl.Categorical | pl.Enum)


def _aligned(current: pl.DataFrame, schema: pl.Schema, names: list[str]) -> pl.DataFrame:
    """The current sample in the reference's types. Text stays text: an Enum of
    the reference's values would turn a new category into a missing value."""

    absent = [pl.lit(None, dtype=schema[name]).alias(name) for name in names if name not in current.columns]
    return current.with_columns(absent).select(
        pl.col(name).cast(pl.String) if _is_text(schema[name]) else pl.col(name).cast(schema[name], strict=False)
        for name in names
    )


def _kinds(reference: pl.DataFrame, current: pl.DataFrame, max_categories: int) -> dict[str, str]:
    """Continuous or categorical per column (see the module docstring)."""
    ints = [c for c, t in reference.schema.items() if t.is_integer()]
    distinct: dict[str, int] = {}
    if ints:
        both = pl.concat([reference.select(ints), current.select(ints)])
        distinct = both.select(pl.all().drop_nulls().n_unique()).row(0, named=True)
    kinds = {}
    for name, dtype in reference.schema.items():
        numeric = dtype.is_float() or dtype.is_temporal() or dtype.is_decimal() or dtype.is_integer()
        few = dtype.is_integer() and distinct[name] <= max_categories
        kinds[name] = CONTINUOUS if numeric and not few else CATEGORICAL
    return kinds


def _row(name: str, kind: str, counts: NDArray[Any], statistic: float | None, p_value: float | None) -> tuple[Any, ...]:
    """A feature's row before the decision; the last column of `counts` is missing."""
    totals = counts.sum(axis=1)
    missing = [float(m / n) if n else None for m, n in zip(counts[:, -1], totals, strict=True)]
    psi_js = effects(counts)
    return (name, kind, *map(int, totals), *psi_js, statistic, p_value, None, *missing, False, "")


def _continuous_rows(
    reference: pl.DataFrame, current: pl.DataFrame, names: list[str], bins: int
) -> dict[str, tuple[Any, ...]]:
    as_float = [_as_float(c, reference.schema[c]) for c in names]
    ref, cur = reference.select(as_float), current.select(as_float)
    return {name: _continuous(name, ref.get_column(name), cur.get_column(name), bins) for name in names}


def _as_float(name: str, dtype: pl.DataType) -> pl.Expr:
    """Values as floats, times as their count of time units; NaN is missing."""
    column = pl.col(name).to_physical() if dtype.is_temporal() else pl.col(name)
    return column.cast(pl.Float64, strict=False).fill_nan(None)


def _continuous(name: str, reference: pl.Series, current: pl.Series, bins: int) -> tuple[Any, ...]:
    r, c = reference.drop_nulls().to_numpy(), current.drop_nulls().to_numpy()
    edges = np.unique(np.quantile(r, np.arange(1, bins) / bins)) if r.size else np.empty(0)
    missing = np.array([reference.null_count(), current.null_count()])
    counts = np.stack(
        [
            np.append(np.bincount(np.searchsorted(edges, values, side="left"), minlength=edges.size + 1), m)
            for values, m in ((r, missing[0]), (c, missing[1]))
        ]
    )
    statistic, p_value = _ks_and_missing(r, c, missing, np.array([reference.len(), current.len()]))
    return _row(name, CONTINUOUS, counts, statistic, p_value)


def _categorical_rows(
    reference: pl.DataFrame, current: pl.DataFrame, names: list[str], max_categories: int
) -> dict[str, tuple[Any, ...]]:
    if not names:
        return {}
    long = pl.concat(
        [
            frame.select(pl.col(names).cast(pl.String))
            .unpivot(variable_name="feature", value_name="value")
            .with_columns(pl.lit(side).alias(_SIDE))
            for side, frame in ((False, reference), (True, current))
        ]
    )
    side = pl.col(_SIDE)
    # Per feature: values by count over both samples (ties by value), missing last.
    counts = (
        long.group_by("feature", "value")
        .agg((~side).sum().cast(pl.Int64).alias("reference"), side.sum().cast(pl.Int64).alias("current"))
        .sort(
            pl.col("value").is_null(),
            pl.col("reference") + pl.col("current"),
            pl.col("value"),
            descending=[False, True, False],
        )
        .partition_by("feature", as_dict=True, include_key=False, maintain_order=True)
    )
    empty = pl.DataFrame(schema={"value": pl.String, "reference": pl.Int64, "current": pl.Int64})
    return {name: _categorical(name, counts.get((name,), empty), max_categories) for name in names}


def _categorical(name: str, counts: pl.DataFrame, max_categories: int) -> tuple[Any, ...]:
    table = counts.select("reference", "current").to_numpy().T.astype(np.int64)
    if not counts.get_column("value").null_count():
        table = np.column_stack([table, np.zeros(2, dtype=np.int64)])  # the missing bin, empty
    present, missing = table[:, :-1], table[:, -1:]
    if present.shape[1] > max_categories:  # the most frequent values, then the rest as one bin
        keep = max_categories - 1
        present = np.column_stack([present[:, :keep], present[:, keep:].sum(axis=1)])
    table = np.column_stack([present, missing])
    statistic, p_value = _chi2(table)
    return _row(name, CATEGORICAL, table, statistic, p_value)


def _decide(table: pl.DataFrame, t: DriftThresholds) -> pl.DataFrame:
    """Holm over the features with enough rows, then the alert rule."""
    enough = (pl.min_horizontal("n_reference", "n_current") >= t.min_samples) & pl.col("p_value").is_not_null()
    family = table.select(enough).to_series().to_numpy()
    p_holm = np.full(table.height, np.nan)
    p_holm[family] = holm(table.get_column("p_value").to_numpy()[family])
    table = table.with_columns(pl.Series("p_holm", p_holm).fill_nan(None))
    significant = (pl.col("p_holm") <= t.alpha).fill_null(False)
    large = _large(t)
    sizes = pl.format("psi {}, js {}", pl.col("psi").round(3), pl.col("js").round(3))
    p_text = (
        pl.when(pl.col("p_holm") < 1e-3).then(pl.lit("< 0.001")).otherwise(pl.col("p_holm").round(3).cast(pl.String))
    )
    reason = (
        pl.when(~enough)
        .then(pl.lit(f"too few rows to judge (fewer than {t.min_samples} on a side)"))
        .when(significant & large)
        .then(pl.format("shifted: {}, p_holm {}", sizes, p_text))
        .when(significant)
        .then(pl.format("significant but small: {}", sizes))
        .otherwise(pl.format("no significant change: p_holm {}", p_text))
    )
    return table.with_columns((enough & significant & large).alias("flagged"), reason.alias("reason"))


def _large(t: DriftThresholds) -> pl.Expr:
    """Whether an effect size passes its threshold (PSI or JS, either suffices)."""
    checks = [pl.col(c) >= v for c, v in (("psi", t.psi_threshold), ("js", t.js_threshold)) if v is not None]
    return pl.any_horizontal(checks).fill_null(False) if checks else pl.lit(False)


# ----------------------------------------------------------------------------- report


def drift_json(
    features: pl.DataFrame,
    distributions: Sequence[DistributionDrift] = (),
    thresholds: DriftThresholds | None = None,
) -> dict[str, Any]:
    """The drift results as plain JSON values: what is flagged, then every feature
    row and distribution (NaN written as null)."""
    rows = features.with_columns(pl.col(pl.Float64).fill_nan(None)).to_dicts()
    flagged = [r["feature"] for r in rows if r["flagged"]] + [d.name for d in distributions if d.flagged]
    out: dict[str, Any] = {"flagged": flagged, "features": rows, "distributions": [d.to_json() for d in distributions]}
    if thresholds is not None:
        out["thresholds"] = asdict(thresholds)
    return out
