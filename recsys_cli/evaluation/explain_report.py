"""A self-contained HTML page of a ranker explanation, from the same summary as
explain.json (so the two never disagree), with the PNGs embedded."""

from __future__ import annotations

from html import escape
from typing import Any

from recsys_cli.evaluation.html import fmt, img, page, pct, section, table

IMPORTANCE_COLUMNS = (
    ("gain_share", "gain share", pct),
    ("split", "splits", lambda v: fmt(v, 0)),
    ("contribution_share", "|contribution| share", pct),
    ("mean_abs_contribution", "mean |contribution|", fmt),
    ("permutation_ndcg_drop", "NDCG@10 drop (shuffled)", fmt),
    ("permutation_log_loss_rise", "log-loss rise (shuffled)", fmt),
)


def render(summary: dict[str, Any], images: dict[str, bytes]) -> str:
    body = [
        _header(summary),
        section("importance", "Feature importance", [img(images, "importance", "feature importance"), _table(summary)]),
        section(
            "dependence",
            "Partial dependence",
            [
                '<p class="note">The calibrated probability averaged over sampled candidate pairs with one feature '
                "set to each value; the band holds 80% of the individual curves.</p>",
                img(images, "partial_dependence", "partial dependence"),
            ],
        ),
        section("curves", "Engagement probabilities", [*_curves(summary), img(images, "precision_recall", "PR")]),
        section("reliability", "Reliability", [img(images, "reliability", "reliability diagram")]),
    ]
    return page(f"Explanation of {summary.get('model', 'a ranker')} ({summary.get('backend', '?')})", body)


def _header(s: dict[str, Any]) -> str:
    pairs = s["pairs"]
    lines = [
        f"run: {s.get('run', '?')}",
        f"window: {s.get('part', '?')} of {s.get('fold', '?')}",
        f"pairs: {pairs['pairs']:,} candidates of {pairs['users']:,} sampled users "
        f"({pairs['users_with_positive']:,} with a positive), {pairs['positives']:,} positives",
        f"importance ranked by {s['ranked_by']}; calibration: {s['calibration_method']}",
        _sample_line(s["importance_sample"]),
        *s["notes"],
    ]
    return '<p class="meta">' + "<br>".join(escape(line) for line in lines) + "</p>"


def _table(s: dict[str, Any], limit: int = 30) -> str:
    present = [c for c in IMPORTANCE_COLUMNS if s["importance"] and c[0] in s["importance"][0]]
    rows = [[r["feature"], *(f(r[key]) for key, _, f in present)] for r in s["importance"][:limit]]
    more = len(s["importance"]) - limit
    note = f'<p class="note">{more} more features in explain.json.</p>' if more > 0 else ""
    return table(["feature", *(label for _, label, _ in present)], rows) + note


def _curves(s: dict[str, Any]) -> list[str]:
    pr, cal = s["precision_recall"], s["calibration"]
    rows = [["average precision", fmt(pr.get("average_precision"))], ["base rate", fmt(pr.get("base_rate"))]]
    if cal.get("available"):
        rows += [[label, fmt(cal[key])] for key, label in _CALIBRATION]
    return [table(["figure", "value"], rows)]


_CALIBRATION = (
    ("ece", "ECE"),
    ("brier", "Brier"),
    ("log_loss", "log loss"),
    ("predicted", "mean predicted"),
    ("observed", "observed rate"),
)


def _sample_line(sizes: dict[str, int]) -> str:
    line = (
        f"permutation importance: one shuffle per feature over {sizes['permutation_pairs']:,} pairs of "
        f"{sizes['permutation_users']:,} users (a single draw: small differences are noise)"
    )
    if "contribution_pairs" in sizes:
        line += f"; mean |contribution| over {sizes['contribution_pairs']:,} sampled pairs"
    return line
