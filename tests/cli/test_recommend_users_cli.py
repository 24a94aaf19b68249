"""recsys recommend --users FILE: raw ids are pseudonymised with the lake's key,
unknown users are counted, and no raw id reaches a message or a run folder."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from recsys_cli.cli import app
from recsys_cli.data.pseudonymise import load_key, pseudonym

runner = CliRunner()


@pytest.fixture(scope="module")
def run_dir(prepared: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    runs = tmp_path_factory.mktemp("runs")
    args = ["train", f"paths.data_dir={prepared}", f"runs_dir={runs}", "model=item_knn"]
    result = runner.invoke(app, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    (run,) = (runs / "itemknn").iterdir()
    return run


@pytest.fixture(scope="module")
def known_raw(prepared: Path, run_dir: Path) -> list[str]:
    """Raw customer ids of the synthetic shop whose pseudonyms the model knows (the lake used the development key)."""
    raw = pl.read_csv(prepared / "raw" / "synth" / "users.csv", infer_schema=False)["customer_id"].to_list()
    vocab = set(json.loads((run_dir / "model" / "model.json").read_text())["users"]["tokens"])
    key = load_key(allow_development_key=True, env_var="RECSYS_NO_SUCH_KEY")
    known = [r for r in raw if pseudonym(r, key, "user_id") in vocab]
    assert len(known) >= 5
    return known[:5]


def recommend(run: Path, users: Path, *extra: str) -> tuple[int, str]:
    result = runner.invoke(app, ["recommend", str(run), "--users", str(users), "--k", "5", *extra])
    return result.exit_code, result.output


def test_raw_ids_get_the_same_recommendations_as_their_pseudonyms(
    run_dir: Path, known_raw: list[str], tmp_path: Path
) -> None:
    key = load_key(allow_development_key=True, env_var="RECSYS_NO_SUCH_KEY")
    pseudonyms = [pseudonym(r, key, "user_id") for r in known_raw]
    (tmp_path / "raw.csv").write_text("user_id\n" + "\n".join([*known_raw, "C-not-a-customer"]) + "\n")
    (tmp_path / "pseudo.csv").write_text("user_id\n" + "\n".join(pseudonyms) + "\n")
    code, output = recommend(run_dir, tmp_path / "raw.csv", "--out", str(tmp_path / "raw.parquet"))
    assert code == 0, output
    assert "1 of 6 users unknown to the model" in output
    assert not [r for r in known_raw if r in output]  # counts only, never the ids
    code, output = recommend(run_dir, tmp_path / "pseudo.csv", "--out", str(tmp_path / "pseudo.parquet"))
    assert code == 0, output and "0 of 5 users unknown" in output
    raw, pseudo = pl.read_parquet(tmp_path / "raw.parquet"), pl.read_parquet(tmp_path / "pseudo.parquet")
    assert raw["user_id"].unique(maintain_order=True).to_list() == [*known_raw, "C-not-a-customer"]  # as given
    mapped = raw.filter(pl.col("user_id") != "C-not-a-customer").with_columns(
        pl.col("user_id").replace_strict(dict(zip(known_raw, pseudonyms, strict=True)))
    )
    assert mapped.equals(pseudo)
    assert raw.filter(pl.col("user_id") == "C-not-a-customer").height == 5  # the unknown user: cold start


def test_pseudonymised_ids_may_be_written_into_the_run_folder(
    run_dir: Path, known_raw: list[str], tmp_path: Path
) -> None:
    key = load_key(allow_development_key=True, env_var="RECSYS_NO_SUCH_KEY")
    (tmp_path / "pseudo.csv").write_text("user_id\n" + pseudonym(known_raw[0], key, "user_id") + "\n")
    code, output = recommend(run_dir, tmp_path / "pseudo.csv")
    assert code == 0, output and (run_dir / "recommendations.parquet").is_file()


def test_raw_ids_are_never_written_into_the_run_folder(run_dir: Path, known_raw: list[str], tmp_path: Path) -> None:
    (tmp_path / "raw.csv").write_text("user_id\n" + "\n".join(known_raw) + "\n")
    before = sorted(p.name for p in run_dir.rglob("*"))
    for extra in ([], ["--out", str(run_dir / "mine.parquet")]):
        code, output = recommend(run_dir, tmp_path / "raw.csv", *extra)
        assert code == 1 and "--out" in output and len(output.strip().splitlines()) == 1
        assert not [r for r in known_raw if r in output]
    assert sorted(p.name for p in run_dir.rglob("*")) == before


def test_a_file_of_ids_the_model_never_saw_is_refused(run_dir: Path, tmp_path: Path) -> None:
    (tmp_path / "other.csv").write_text("user_id\nalice@shop.example\nbob@shop.example\n")
    code, output = recommend(run_dir, tmp_path / "other.csv", "--out", str(tmp_path / "r.parquet"))
    assert code == 1 and "none of its 2 user ids is known" in output and "alice" not in output
    assert not (tmp_path / "r.parquet").exists()


BAD_FILES = {
    "empty": (b"", "is empty"),
    "header only": (b"user_id\n", "no user ids"),
    "blank ids": (b"user_id\n\n  \n", "no user ids"),
    "no user_id column": (b"customer,segment\nC1,a\n", "no user_id column"),
    "no header at all": (b"secret-id-4711\nsecret-id-4712\n", "no user_id column"),
    "gzip named .csv": (gzip.compress(b"user_id\nsecret-id-4711\n"), "gzip-compressed"),
    "unterminated quote": (b'user_id,x\n"secret-id-4711,1\nsecret-id-4712,2\n', ""),
}


@pytest.mark.parametrize("name", list(BAD_FILES), ids=list(BAD_FILES))
def test_bad_users_files_are_one_line_without_any_id(run_dir: Path, tmp_path: Path, name: str) -> None:
    content, message = BAD_FILES[name]
    (tmp_path / "users.csv").write_bytes(content)
    code, output = recommend(run_dir, tmp_path / "users.csv", "--out", str(tmp_path / "r.parquet"))
    assert code == 1 and message in output and len(output.strip().splitlines()) == 1, output
    assert "secret-id" not in output and "Traceback" not in output


def test_a_missing_users_file_is_one_line(run_dir: Path, tmp_path: Path) -> None:
    code, output = recommend(run_dir, tmp_path / "nope.csv")
    assert code == 1 and "users file not found" in output and len(output.strip().splitlines()) == 1
