"""reference/config.md, generated at build time from conf/: every config group, each
of its options, each option's keys with their defaults and meanings.

A key's meaning is the comment written beside it (`l2: 8.0  # ...`) or the comment
block directly above it in its YAML file; the comment block that opens a file
describes the option as a whole. Values are read by a YAML parser, so interpolations
(`${paths.data_dir}/raw`) show as written. `missing_meanings()` lists the keys that
have no comment, for tests/docs/test_reference_config.py.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
CONF = ROOT / "conf"
PAGE = "reference/config.md"
# Keys whose meaning is the same in every file: said once, here.
BUILT_IN = {
    "_target_": "the class this option builds",
    "_partial_": "built as a partial: the caller supplies the remaining arguments",
    "_recursive_": "false: the nested configs are built by the class itself, not by Hydra",
    "defaults": "other configs this one composes (Hydra's defaults list)",
}
# A sweep's parameter is the config key it overrides (conf/sweep/<name>.yaml).
SEARCH_SPACE = "sweep.params."
INTRO = """# Config groups

Generated from `conf/` when the site is built. A command composes its primary config
(`conf/<command>.yaml`, [below](#primary-configs)), which picks one option of each
group; `group=option` picks another (`model=ease`, `sweep/sampler=random`) and
`group.key=value` changes one key (`model.l2=32`). A key's meaning is the comment
beside or above it in its file, the option's description the comment that opens the
file. How overrides work, and which keys every command shares: the
[configuration guide](../guide/configuration.md).
"""


@dataclass
class Key:
    path: str
    default: str
    meaning: str


@dataclass
class Option:
    group: str  # "model", "sweep/sampler"; "" for a primary config
    name: str
    description: str
    keys: list[Key] = field(default_factory=list)

    @property
    def file(self) -> str:
        return f"conf/{self.group + '/' if self.group else ''}{self.name}.yaml"


def _strip_comment(text: str) -> tuple[str, str]:
    """(value, comment) of the text after `key:`, a `#` inside quotes being text."""
    quote = ""
    for i, char in enumerate(text):
        if quote:
            quote = "" if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char == "#" and (i == 0 or text[i - 1].isspace()):
            return text[:i].strip(), text[i + 1 :].strip()
    return text.strip(), ""


def _key_line(line: str) -> tuple[int, str, str, str] | None:
    """(indent, key, value text, trailing comment) of a `key: value` line, else None."""
    stripped = line.lstrip()
    if not stripped or stripped.startswith(("#", "-")) or ":" not in stripped:
        return None
    key, _, rest = stripped.partition(":")
    if not key or any(c.isspace() for c in key) or (rest and not rest[0].isspace()):
        return None
    value, comment = _strip_comment(rest)
    return len(line) - len(stripped), key, value, comment


def _brackets(text: str) -> int:
    """How many flow brackets the text opens and leaves open."""
    return text.count("{") + text.count("[") - text.count("}") - text.count("]")


def _comment_text(line: str) -> str:
    return line.strip().removeprefix("#").strip()


def _show(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, int | float):
        return repr(value)
    return yaml.safe_dump(value, default_flow_style=True, width=10**6, sort_keys=False).strip()


def _lookup(data: Any, path: list[str]) -> Any:
    for part in path:
        data = data.get(part) if isinstance(data, dict) else None
    return data


def _opening(lines: list[str], group: str) -> tuple[int, str, str]:
    """(how many comment lines open the file, their text, the option's package)."""
    package, text, leading = group.replace("/", "."), [], 0
    for line in lines:
        if not line.strip().startswith("#"):
            break
        leading += 1
        if line.strip().startswith("# @package"):
            package = line.split("@package", 1)[1].strip()
        else:
            text.append(_comment_text(line))
    return leading, " ".join(text), package


def parse(file: Path, group: str) -> Option:
    """One option file: its description and its keys, in file order."""
    text = file.read_text(encoding="utf-8")
    data = yaml.safe_load(text) or {}
    lines = text.splitlines()
    leading, description, package = _opening(lines, group)
    prefix = [] if package in ("_global_", "") else package.split(".")
    option = Option(group, file.stem, description)
    stack: list[tuple[int, str]] = []
    above: list[str] = []
    open_brackets = 0  # inside a flow collection written over several lines
    for line in lines[leading:]:  # the opening block describes the option, not its first key
        parsed = None if open_brackets else _key_line(line)
        open_brackets += _brackets(_strip_comment(line)[0])
        if parsed is None:
            above = [*above, _comment_text(line)] if line.strip().startswith("#") else []
            continue
        indent, key, value, comment = parsed
        while stack and stack[-1][0] >= indent:
            stack.pop()
        path = [k for _, k in stack] + [key]
        stack.append((indent, key))
        meaning = comment or " ".join(above) or BUILT_IN.get(key, "")
        above = []
        loaded = _lookup(data, path)
        if not value and isinstance(loaded, dict) and loaded:
            if meaning:  # a block mapping: listed when it says something; its own keys follow
                option.keys.append(Key(".".join(prefix + path), "", meaning))
            continue
        option.keys.append(Key(".".join(prefix + path), _show(loaded), meaning))
    return option


def groups(conf: Path = CONF) -> dict[str, list[Path]]:
    """Group ("model", "sweep/sampler") -> its option files, sorted."""
    found: dict[str, list[Path]] = {}
    for file in sorted(conf.rglob("*.yaml")):
        if file.parent != conf:
            found.setdefault(file.parent.relative_to(conf).as_posix(), []).append(file)
    return dict(sorted(found.items()))


def options(conf: Path = CONF) -> list[Option]:
    """Every option of every group, then the primary configs (group "")."""
    grouped = [parse(f, group) for group, files in groups(conf).items() for f in files]
    return _shared_meanings(grouped + [parse(f, "") for f in sorted(conf.glob("*.yaml"))])


def _shared_meanings(options: list[Option]) -> list[Option]:
    """A key that several options of a group share is explained once, in any of them
    (`target.exclude_seen` beside engagement.yaml's key holds for purchases.yaml too);
    the primary configs are one group (`runs_dir` said once holds for every command).
    A key no option of its group explains takes the meaning it has elsewhere (presets)."""
    said: dict[tuple[str, str], str] = {}
    anywhere: dict[str, str] = {}  # a preset's `model.l2` means what conf/model/ says it means
    for option in options:
        for key in option.keys:
            if key.meaning:
                said.setdefault((option.group, key.path), key.meaning)
                anywhere.setdefault(key.path, key.meaning)
    for option in options:
        for key in option.keys:
            key.meaning = key.meaning or said.get((option.group, key.path)) or anywhere.get(key.path, "")
            if not key.meaning and key.path.startswith(SEARCH_SPACE):
                key.meaning = f"the values `{key.path.removeprefix(SEARCH_SPACE)}` is searched over"
    return options


def missing_meanings(conf: Path = CONF) -> dict[str, list[str]]:
    """Option file -> its keys that have no comment to say what they mean."""
    missing = {o.file: [k.path for k in o.keys if not k.meaning] for o in options(conf)}
    return {file: keys for file, keys in missing.items() if keys}


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def _code(text: str) -> str:
    return f"`{_cell(text)}`" if text else ""


def render(option: Option) -> list[str]:
    if option.group:
        title = f"`{option.group}={option.name}`"
    elif option.name == "chain":  # conf/chain.yaml is no command: the keys every command accepts
        title = "Shared by every command (`conf/chain.yaml`)"
    else:
        title = f"`recsys {option.name}`"
    about = f"`{option.file}`" + (f": {_cell(option.description)}" if option.description else "")
    lines = [f"### {title}", "", about, ""]
    if option.keys:
        lines += ["| key | default | meaning |", "|---|---|---|"]
        lines += [f"| `{k.path}` | {_code(k.default)} | {_cell(k.meaning)} |" for k in option.keys]
        lines.append("")
    return lines


def page(conf: Path = CONF) -> str:
    everything = options(conf)
    lines = [INTRO]
    for group in groups(conf):
        members = [o for o in everything if o.group == group]
        lines += [f"## {group}", "", "Options: " + ", ".join(f"`{o.name}`" for o in members) + ".", ""]
        for option in members:
            lines += render(option)
    lines += [
        "## Primary configs",
        "",
        "One per command, composing the groups above (its defaults list) and adding its own keys.",
        "",
    ]
    for option in (o for o in everything if not o.group):
        lines += render(option)
    return "\n".join(lines)
