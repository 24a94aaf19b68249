"""`recsys compare` on hand-made run folders: the table, the summary sentence, the
JSON, and one-line errors for folders that cannot be compared."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from typer.testing import CliRunner

from recsys_cli.cli import app
from tests.registry.run_folders import seal

runner = CliRunner()
WIDE = {"COLUMNS": "250"}  # one table row per line, whatever the terminal
N_USERS = 40
# Per-user ndcg@10 of the control: a fixed spread of easy and hard users.
CONTROL = np.round(np.linspace(0.05, 0.85, N_USERS), 4)


def make_run(
    root: Path,
    model: str,
    values: np.ndarray,
    users: list[str] | None = None,
    part: str = "val",
    ablate: list[str] | None = None,
) -> Path:
    """A run folder as `recsys train` writes it, with only the keys compare reads
    (`ablate`: a ranker's `model.ablate`)."""
    run = root / model / "20260101T000000000000Z"
    run.mkdir(parents=True)
    (run / "config.yaml").write_text(
        f"part: {part}\nfold: fold-0\nsplit_dir: data/splits/synth/global_temporal-engagement\n"
        "split:\n  name: global_temporal\n  val_fraction: 0.1\n  test_fraction: 0.1\n"
        "target:\n  name: engagement\ndata:\n  name: synth\n"
        f"model:\n  _target_: recsys_cli.models.{model}\n"
        + ("" if ablate is None else f"  ablate: [{', '.join(ablate)}]\n")
    )
    users = users or [f"u{i:02d}" for i in range(len(values))]
    frame = pl.DataFrame({"user_id": users, "ndcg@10": values, "recall@10": np.minimum(values * 1.5, 1.0)})
    frame.write_parquet(run / "per_user.parquet")
    (run / "metrics.json").write_text(json.dumps({f"{part}/ndcg@10": float(values.mean())}))
    return seal(run)


@pytest.fixture
def runs(tmp_path: Path) -> list[Path]:
    """control; a model better by 0.05 on 35 of 40 users; one identical to the
    control except for two users that swap a little (an A/A in all but name)."""
    better = CONTROL.copy()
    better[:35] += 0.05
    same = CONTROL.copy()
    same[[3, 7]] += [0.01, -0.01]
    root = tmp_path / "runs"
    return [make_run(root, "popularity", CONTROL), make_run(root, "ease", better), make_run(root, "itemknn", same)]


def test_compare_against_the_control(runs: list[Path], tmp_path: Path) -> None:
    out = tmp_path / "cmp.json"
    args = ["compare", *map(str, runs), "--resamples", "500", "--out", str(out)]
    result = runner.invoke(app, args, env=WIDE, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "shared by all: 40" in result.output
    rows = {line.split()[1]: line for line in result.output.splitlines() if "/20260101T" in line and "│" in line}
    assert "control" in rows["popularity/20260101T000000000000Z"]
    assert rows["ease/20260101T000000000000Z"].rstrip(" │").endswith("better")
    assert rows["itemknn/20260101T000000000000Z"].rstrip(" │").endswith("no significant difference")
    assert "After Holm correction over 2 comparisons" in result.output
    assert "ease/20260101T000000000000Z is better than popularity/20260101T000000000000Z" in result.output

    saved = json.loads(out.read_text())
    assert saved["mode"] == "control" and saved["correction"] == "holm" and saved["shared_users"] == N_USERS
    assert [r["users"] for r in saved["runs"]] == [40, 40, 40]
    ease, knn = saved["comparisons"]
    assert ease["verdict"] == "better" and ease["interval"] == "above 0" and ease["holm_p"] < 0.05
    assert ease["difference"] == pytest.approx(0.05 * 35 / 40)
    assert knn["verdict"] == "no significant difference" and knn["difference"] == pytest.approx(0, abs=1e-12)
    # Holm by hand over the two comparisons: the smaller p doubled, the larger kept.
    assert ease["holm_p"] == pytest.approx(2 * ease["wilcoxon_p"])
    assert knn["holm_p"] == pytest.approx(max(knn["wilcoxon_p"], 2 * ease["wilcoxon_p"]))


def test_all_pairs_unshared_users_and_default_output(runs: list[Path]) -> None:
    extra = make_run(runs[0].parents[1], "sasrec", np.append(CONTROL[5:], 0.5), [f"u{i:02d}" for i in range(5, 41)])
    result = runner.invoke(app, ["compare", *map(str, [*runs, extra]), "--all-pairs", "--resamples", "300"], env=WIDE)
    assert result.exit_code == 0, result.output
    assert "sasrec/20260101T000000000000Z 36" in result.output and "shared by all: 35" in result.output
    (written,) = (runs[0].parents[1] / "comparisons").glob("*.json")  # beside the model folders
    saved = json.loads(written.read_text())
    assert saved["mode"] == "all_pairs" and len(saved["comparisons"]) == 6 and saved["shared_users"] == 35
    assert "over 6 comparisons" in saved["summary"]


def test_another_metric_is_compared(runs: list[Path], tmp_path: Path) -> None:
    out = tmp_path / "recall.json"
    args = ["compare", str(runs[0]), str(runs[1]), "--metric", "recall@10", "--resamples", "200", "--out", str(out)]
    assert runner.invoke(app, args, env=WIDE).exit_code == 0
    assert json.loads(out.read_text())["metric"] == "recall@10"


def one_line_error(args: list[str]) -> str:
    result = runner.invoke(app, args, env=WIDE)
    assert result.exit_code == 1, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), result.output
    return lines[0]


def test_a_missing_run_folder_is_a_one_line_error(runs: list[Path], tmp_path: Path) -> None:
    missing = tmp_path / "runs" / "ease" / "nope"
    assert str(missing) in one_line_error(["compare", str(runs[0]), str(missing)])


def test_a_run_without_per_user_metrics_is_a_one_line_error(runs: list[Path]) -> None:
    (runs[1] / "per_user.parquet").unlink()
    line = one_line_error(["compare", str(runs[0]), str(runs[1])])
    assert str(runs[1]) in line and "per_user.parquet" in line


def test_a_run_given_twice_is_refused_in_any_spelling(runs: list[Path]) -> None:
    again = runs[0].parent / ".." / runs[0].parent.name / runs[0].name
    line = one_line_error(["compare", str(runs[0]), str(runs[1]), str(again)])
    assert f"{again}: the same run as {runs[0]}" in line


def test_runs_of_different_parts_or_unknown_metrics_are_refused(runs: list[Path], tmp_path: Path) -> None:
    test_run = make_run(tmp_path / "other", "ease", CONTROL, part="test")
    assert "different windows: part" in one_line_error(["compare", str(runs[0]), str(test_run)])
    line = one_line_error(["compare", str(runs[0]), str(runs[1]), "--metric", "ndcg@5"])
    assert "'ndcg@5'" in line and "ndcg@10" in line
    assert "at least two" in one_line_error(["compare", str(runs[0])])


def test_compare_help_does_not_import_heavy_libraries() -> None:
    code = (
        "import sys; from typer.testing import CliRunner; from recsys_cli.cli import app; "
        "r = CliRunner().invoke(app, ['compare', '--help']); assert r.exit_code == 0, r.output; "
        "heavy = [m for m in ('polars', 'scipy', 'numpy', 'torch', 'hydra') if m in sys.modules]; "
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_ablated_runs_are_read_against_the_full_run(tmp_path: Path) -> None:
    """Runs that differ by model.ablate get an Ablations table against the run that
    drops nothing, whatever its place in the list: dropping `ease` costs 0.1 on every
    user (it matters), dropping `item_age` gains 0.02 (it helps to drop), and dropping
    `user_other` moves two users a little either way (no evidence). A model without
    the setting (popularity) stays out of the table."""
    root = tmp_path / "runs"
    rng = np.random.default_rng(3)
    full = CONTROL.copy()
    noise = CONTROL.copy()
    noise[[3, 7]] += [0.01, -0.01]
    runs = [
        make_run(root, "popularity", CONTROL),
        make_run(root, "ranker_ease", np.clip(full - 0.1 + rng.uniform(-0.01, 0.01, N_USERS), 0, 1), ablate=["ease"]),
        make_run(root, "ranker", full, ablate=[]),
        make_run(root, "ranker_age", full + 0.02, ablate=["item_age"]),
        make_run(root, "ranker_other", noise, ablate=["user_other"]),
    ]
    out = tmp_path / "cmp.json"
    result = runner.invoke(app, ["compare", *map(str, runs), "--resamples", "500", "--out", str(out)], env=WIDE)
    assert result.exit_code == 0, result.output
    assert "Ablations: ndcg@10 against ranker/20260101T000000000000Z" in result.output
    table = result.output[result.output.index("Ablations") :]
    rows = {line.split()[1]: line for line in table.splitlines() if "/20260101T" in line and "│" in line}
    assert set(rows) == {f"{m}/20260101T000000000000Z" for m in ("ranker_ease", "ranker_age", "ranker_other")}
    assert "ease" in rows["ranker_ease/20260101T000000000000Z"]
    assert rows["ranker_ease/20260101T000000000000Z"].rstrip(" │").endswith("matters")
    assert rows["ranker_age/20260101T000000000000Z"].rstrip(" │").endswith("helps to drop")
    assert rows["ranker_other/20260101T000000000000Z"].rstrip(" │").endswith("no evidence")

    saved = json.loads(out.read_text())["ablations"]
    assert saved["full"] == "ranker/20260101T000000000000Z" and saved["full_ablate"] == []
    ease, age, other = saved["rows"]
    assert ease["dropped"] == ["ease"] and ease["verdict"] == "matters" and ease["high"] < 0
    assert ease["difference"] == pytest.approx(ease["mean"] - ease["full_mean"])
    assert age["difference"] == pytest.approx(0.02) and age["low"] > 0 and age["verdict"] == "helps to drop"
    assert other["low"] <= 0 <= other["high"] and other["verdict"] == "no evidence"


def test_no_ablations_table_when_runs_do_not_differ_by_ablate(tmp_path: Path) -> None:
    root = tmp_path / "runs"
    runs = [make_run(root, "ranker", CONTROL, ablate=[]), make_run(root, "ranker2", CONTROL + 0.01, ablate=[])]
    out = tmp_path / "cmp.json"
    result = runner.invoke(app, ["compare", *map(str, runs), "--resamples", "200", "--out", str(out)], env=WIDE)
    assert result.exit_code == 0, result.output
    assert "Ablations" not in result.output and "ablations" not in json.loads(out.read_text())
