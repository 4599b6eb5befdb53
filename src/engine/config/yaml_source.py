"""YAML loading that remembers where every value came from.

`load_yaml` returns plain Python data (via `yaml.safe_load` semantics: only standard tags)
plus a map from each value's path (`("clients", 0, "redirect_uris", 1)`) to its line, so
validation errors can be reported as `file:line: message` (STYLE.md §5). Duplicate mapping
keys, which PyYAML silently overwrites, are errors here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

Loc = tuple[str | int, ...]


class ConfigError(Exception):
    """One or more configuration problems, each already `file:line: message`."""

    def __init__(self, problems: list[str]):
        super().__init__("\n".join(problems))
        self.problems = problems


@dataclass
class Source:
    """One parsed YAML file: its data and the line of every value in it."""

    path: Path
    data: Any
    lines: dict[Loc, int] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    def line_of(self, loc: Loc) -> int:
        """The line of the deepest known prefix of `loc` (1-based)."""
        for end in range(len(loc), -1, -1):
            if (line := self.lines.get(tuple(loc[:end]))) is not None:
                return line
        return 1

    def where(self, loc: Loc) -> str:
        return f"{self.path}:{self.line_of(loc)}"


class _Builder(yaml.SafeLoader):
    """SafeLoader whose `construct_document` we bypass: we walk the node graph ourselves."""


def _construct(loader: _Builder, node: yaml.Node, loc: Loc, source: Source) -> Any:
    source.lines[loc] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        loader.flatten_mapping(node)
        result: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node, deep=True)
            if not isinstance(key, (str, int, float, bool)) or key is None:
                source.problems.append(
                    f"{source.path}:{key_node.start_mark.line + 1}: mapping keys must be plain scalars"
                )
                continue
            key = str(key) if not isinstance(key, str) else key
            if key in result:
                source.problems.append(
                    f"{source.path}:{key_node.start_mark.line + 1}: duplicate key {key!r}"
                )
                continue
            source.lines[(*loc, key)] = key_node.start_mark.line + 1
            result[key] = _construct(loader, value_node, (*loc, key), source)
            source.lines[(*loc, key)] = key_node.start_mark.line + 1
        return result
    if isinstance(node, yaml.SequenceNode):
        return [_construct(loader, item, (*loc, i), source) for i, item in enumerate(node.value)]
    return loader.construct_object(node, deep=True)


def load_yaml(path: Path, text: str | None = None) -> Source:
    """Parse one YAML document; syntax errors become problems, never tracebacks."""
    source = Source(path=path, data=None)
    try:
        if text is None:
            text = path.read_text(encoding="utf-8")
        loader = _Builder(text)
        try:
            node = loader.get_single_node()
            source.data = {} if node is None else _construct(loader, node, (), source)
        finally:
            loader.dispose()
    except OSError as exc:
        source.problems.append(f"{path}:1: cannot read file: {exc.strerror or exc}")
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 1
        source.problems.append(f"{path}:{line}: invalid YAML: {exc.problem or exc.context}")
    except yaml.YAMLError as exc:
        source.problems.append(f"{path}:1: invalid YAML: {exc}")
    return source
