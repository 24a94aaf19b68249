"""reference/cli.md, generated at build time from the Typer app itself: every
command and subcommand with its usage, help text, arguments and options (with
their defaults), as `recsys CMD --help` shows them. Nothing here is written twice:
a help text changes in recsys_cli/cli/ and the page follows.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PAGE = "reference/cli.md"
EXAMPLE = "Example:"  # how a command's help introduces its example
INTRO = """# Command line

Every command of `recsys`, generated from the command-line app when the site is
built: what `recsys CMD --help` prints, as tables. Commands that compose a config
take trailing `key=value` overrides (see [Config groups](config.md) for every key).
"""


def command_tree() -> Any:
    """The click command Typer builds for `recsys` (the object `recsys --help` renders)."""
    import typer

    from recsys_cli.cli import app

    return typer.main.get_command(app)


def walk(command: Any, path: tuple[str, ...] = ("recsys",)) -> list[tuple[tuple[str, ...], Any]]:
    """Each command under `command`, depth first, in the order `--help` lists them."""
    found = [(path, command)]
    for name in getattr(command, "commands", {}):
        sub = command.commands[name]
        if not getattr(sub, "hidden", False):
            found += walk(sub, (*path, name))
    return found


def _escaped(text: str) -> str:
    """Help text as literal markdown: `<timestamp>` is not an HTML tag, `*` no emphasis."""
    return text.replace("\b\n", "").replace("<", "&lt;").replace(">", "&gt;").replace("*", "\\*")


def _cell(text: object) -> str:
    return _escaped(_code(text))


def _code(text: object) -> str:
    """One line for a table cell (inside backticks: nothing else escaped)."""
    return " ".join(str(text).split()).replace("|", "\\|")


def _default(param: Any) -> str:
    default = param.default
    if getattr(param, "is_flag", False) and param.secondary_opts:
        return f"`{'--' if default else '--no-'}{param.name.replace('_', '-')}`"
    if default is None or default == () or callable(default) or getattr(param, "required", False):
        return ""
    if isinstance(default, bool):
        return "on" if default else "off"
    if isinstance(default, Path) and default.is_absolute() and default.is_relative_to(ROOT):
        default = default.relative_to(ROOT)  # the checkout's conf/, not this machine's path
    return f"`{_code(default)}`"


def _names(param: Any) -> str:
    if not param.opts or not param.opts[0].startswith("-"):
        name = (param.metavar or param.name).upper()
        return f"`{name}`" + (" ..." if param.nargs == -1 else "")
    return ", ".join(f"`{o}`" for o in [*param.opts, *param.secondary_opts])


def _kind(param: Any) -> str:
    if getattr(param, "is_flag", False):
        return "flag"
    annotation = param.type_descriptor.annotation
    name = annotation.__name__ if isinstance(annotation, type) else str(annotation)
    return f"`{_code(name.replace('typing.', '').replace('pathlib.', ''))}`"


def params_table(command: Any) -> list[str]:
    """One row per argument and option: names, type, default, help."""
    rows = [p for p in command.params if not getattr(p, "hidden", False) and p.name != "help"]
    if not rows:
        return []
    out = ["| argument / option | type | default | what |", "|---|---|---|---|"]
    for p in rows:
        required = " (required)" if getattr(p, "required", False) else ""
        out.append(f"| {_names(p)}{required} | {_kind(p)} | {_default(p)} | {_cell(getattr(p, 'help', '') or '')} |")
    return out


def usage(command: Any, path: tuple[str, ...]) -> str:
    """The usage line, as `--help` prints it."""
    pieces = command.collect_usage_pieces(_context(command, path))
    return " ".join([*path, *pieces])


def _context(command: Any, path: tuple[str, ...]) -> Any:
    return command.context_class(command, info_name=" ".join(path))


def _paragraph(text: str) -> list[str]:
    """A help paragraph as markdown; its example command (`Example: recsys ...`) as a code block."""
    if text.startswith(EXAMPLE):
        return ["```bash", text.removeprefix(EXAMPLE).strip(), "```"]
    return [_escaped(text)]


def section(path: tuple[str, ...], command: Any) -> list[str]:
    level = "#" * min(len(path) + 1, 4)
    lines = [f"{level} `{' '.join(path)}`", "", "```text", usage(command, path), "```", ""]
    for paragraph in (command.help or "").strip().split("\n\n"):
        lines += [*_paragraph(paragraph.strip()), ""] if paragraph.strip() else []
    table = params_table(command)
    if table:
        lines += [*table, ""]
    subs = [name for name in getattr(command, "commands", {}) if not command.commands[name].hidden]
    if subs:
        lines += ["Subcommands: " + ", ".join(f"`{name}`" for name in subs) + ".", ""]
    return lines


def page() -> str:
    lines = [INTRO]
    for path, command in walk(command_tree()):
        lines += section(path, command)
    return "\n".join(lines)
