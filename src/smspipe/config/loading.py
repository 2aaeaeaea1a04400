"""Reading a config file: YAML, then every problem in it at once, one line each.

``config.yaml:3: from: must be a string, got a number: put the value in quotes``
— file and line, the key path, what is wrong, how to fix it. A YAML syntax
error stops the parser, so it is reported alone; otherwise every duplicate key,
unknown key and ill-typed value is reported in one run, in line order.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from smspipe.errors import ConfigError
from smspipe.spelling import setting

if TYPE_CHECKING:
    from smspipe.config.wording import ConfigProblem

_YAML_HINT = "fix the YAML syntax (quote values that hold ': ' or start with a special character)"
# The YAML scanner quotes what it tripped on (an alias, a tag, an anchor): that
# may be part of a secret, in any key. A character or two is safe, and useful,
# and so are its own token names ('<stream end>').
_QUOTED = re.compile(r"'([^']*)'" + r'|"([^"]*)"')


def _masked(match: re.Match[str]) -> str:
    inner = match.group(1) if match.group(1) is not None else match.group(2)
    keep = len(inner) <= 3 or re.fullmatch(r"<[a-z ]+>", inner) is not None
    return match.group(0) if keep else "'…'"


class ConfigProblems(ConfigError):
    """Several problems in one config file: ``str()`` is one line per problem."""

    def __init__(self, lines: list[str]) -> None:
        super().__init__("\n".join(lines))
        self.lines = lines


def read_file(path: Path) -> dict[str, Any]:
    """The validated contents of a config file; ConfigError (with file:line) if broken."""
    try:
        text = path.read_text("utf-8-sig")
    except FileNotFoundError:
        raise ConfigError(
            f"config file {path} does not exist",
            hint=f"create it with `smspipe config init`, or fix {setting('config')} / SMSPIPE_CONFIG",
        ) from None
    except IsADirectoryError:
        raise ConfigError(
            f"config file {path} is a directory",
            hint=f"point {setting('config')} / SMSPIPE_CONFIG at a YAML file",
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        # The path is in the message already: the reason alone (not str(exc)).
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise ConfigError(f"config file {path}: cannot read it ({reason})") from None
    return parse(text, path)


def parse(text: str, path: Path | str) -> dict[str, Any]:
    """Parse and validate the text of a config file named *path* (used in messages)."""
    from smspipe.config.masking import register_secrets_in
    from smspipe.config.wording import problems_in

    register_secrets_in(text)  # before anything can fail and quote it
    node, data = _load(text, path)
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(
            f"{path}: the config file must be a mapping of keys to values",
            hint="write one `key: value` per line; see `smspipe config example`",
        )
    found = [*_duplicates(node), *_located(problems_in(data), node)]
    if found:
        found.sort(key=lambda item: item[0])
        if len(found) == 1:
            line, message, hint = found[0]
            raise ConfigError(f"{_at(path, line)}: {message}", hint=hint)
        raise ConfigProblems([f"{_at(path, line)}: {message}: {hint}" for line, message, hint in found])
    return data


def _at(path: Path | str, line: int) -> str:
    return f"{path}:{line}" if line else str(path)


def _load(text: str, path: Path | str) -> tuple[Any, Any]:
    """The YAML node tree of *text* and its value; a YAML error is one ConfigError with file and line."""
    import yaml

    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.SafeLoader("").construct_document(node) if node is not None else None
    except yaml.reader.ReaderError as exc:  # a character YAML refuses anywhere
        line = text.count("\n", 0, exc.position) + 1
        raise ConfigError(
            f"{path}:{line}: a control character (#x{exc.character:04x}) YAML does not allow",
            hint="remove it, or write it as an escape in a double-quoted string",
        ) from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{_where(exc, text, path)}: {_problem(exc)}", hint=_YAML_HINT) from None
    return node, data


def _where(exc: Any, text: str, path: Path | str) -> str:
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    context_mark = getattr(exc, "context_mark", None)
    if mark is not None and context_mark is not None and mark.index >= len(text.rstrip()):
        mark = context_mark  # the end came first: point at the unclosed quote or bracket
    return f"{path}:{mark.line + 1}" if mark is not None else str(path)


def _problem(exc: Any) -> str:
    problem = getattr(exc, "problem", None) or "not valid YAML"
    context = getattr(exc, "context", None)
    if context:
        problem = f"{context}, {problem}"
    return _QUOTED.sub(_masked, problem)


def _located(problems: list[ConfigProblem], node: Any) -> list[tuple[int, str, str]]:
    return [(line_of(node, key_path) or 0, message, hint) for key_path, message, hint in problems]


def line_of(node: Any, key_path: list[str | int]) -> int | None:
    """The line of the YAML node at *key_path* (the key's line for a mapping entry)."""
    import yaml

    if node is None:
        return None
    line: int = node.start_mark.line + 1
    for part in key_path:
        if isinstance(node, yaml.MappingNode):
            for key_node, value_node in node.value:
                if isinstance(key_node, yaml.ScalarNode) and key_node.value == str(part):
                    line, node = key_node.start_mark.line + 1, value_node
                    break
            else:
                return line
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            return line
    return line


def _duplicates(node: Any) -> list[tuple[int, str, str]]:
    """Every key written twice: YAML would silently keep the last one."""
    import yaml

    from smspipe.config.wording import shown_name

    found: list[tuple[int, str, str]] = []
    if isinstance(node, yaml.MappingNode):
        seen: dict[str, int] = {}
        for key_node, value_node in node.value:
            if isinstance(key_node, yaml.ScalarNode):
                line = key_node.start_mark.line + 1
                if key_node.value in seen:
                    found.append(
                        (
                            line,
                            f"key {shown_name(key_node.value)} appears twice "
                            f"(also on line {seen[key_node.value]})",
                            "keep one of them",
                        )
                    )
                else:
                    seen[key_node.value] = line
            found.extend(_duplicates(value_node))
    elif isinstance(node, yaml.SequenceNode):
        for item in node.value:
            found.extend(_duplicates(item))
    return found
