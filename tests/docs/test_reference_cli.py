"""The command-line reference (scripts/docs_cli.py) is the Typer app itself, walked:
every command, its usage, and every option with its default."""

from __future__ import annotations

from tests.docs import ROOT, load_script

docs_cli = load_script("docs_cli")


def test_every_command_and_subcommand_has_a_section() -> None:
    page = docs_cli.page()
    commands = [path for path, _ in docs_cli.walk(docs_cli.command_tree())]
    assert ("recsys", "train") in commands and ("recsys", "registry", "promote") in commands
    for path in commands:
        assert f"`{' '.join(path)}`" in page, path
        assert "\n" + " ".join(path) in page, f"{path}: no usage line"


def test_options_are_listed_with_their_defaults() -> None:
    train = docs_cli.command_tree().commands["train"]
    table = "\n".join(docs_cli.params_table(train))
    assert "| `OVERRIDES` ... |" in table
    assert "| `--config-dir` | `Path` | `conf` |" in table, "the checkout's conf/, not this machine's path"
    split = "\n".join(docs_cli.params_table(docs_cli.command_tree().commands["split"]))
    assert "| `--verify`, `--no-verify` | flag | `--verify` |" in split


def test_the_page_names_no_path_of_this_machine() -> None:
    assert str(ROOT) not in docs_cli.page()


def test_help_text_is_literal_markdown() -> None:
    assert docs_cli._escaped("runs/<model>/<timestamp>/ *.yaml") == r"runs/&lt;model&gt;/&lt;timestamp&gt;/ \*.yaml"


def test_a_commands_example_is_a_code_block() -> None:
    assert docs_cli._paragraph("Example: recsys train model=ease") == ["```bash", "recsys train model=ease", "```"]
    page = docs_cli.page()
    assert "```bash\nrecsys train " in page
