"""YAML loading that remembers where every value came from.

`load_yaml` returns plain Python data (via `yaml.safe_load` semantics: only standard tags)
plus a map from each value's path (`("clients", 0, "redirect_uris", 1)`) to its line, so
validation errors can be reported as `file:line: message` (STYLE.md §5). Duplicate mapping
keys, which PyYAML silently overwrites, are errors here.

Two paths, one result. The fast path (10,000 realm files must load in seconds) parses
with libyaml (`CSafeLoader`, when PyYAML was built with it) and constructs plain data,
refusing duplicate or non-scalar keys as it goes; the line map is only built when some
message needs a line (`Source.lines`, computed on first use from the kept text). A file
the fast path refuses (duplicate keys, odd keys or tags, syntax errors) goes through the
marked node walk, which reports each problem at its line; syntax errors are re-parsed by
the pure-Python parser so that messages do not depend on how PyYAML was built.
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
    problems: list[str] = field(default_factory=list)
    text: str | None = field(default=None, repr=False)  # for the line map, built on demand
    _lines: dict[Loc, int] | None = field(default=None, repr=False)

    @property
    def lines(self) -> dict[Loc, int]:
        if self._lines is None:
            scratch = Source(self.path, None, _lines={})
            if self.text is not None:
                try:
                    _walk(_MarkedFast, self.text, scratch)
                except yaml.YAMLError:
                    pass
            self._lines = scratch.lines
        return self._lines

    def line_of(self, loc: Loc) -> int:
        """The line of the deepest known prefix of `loc` (1-based)."""
        lines = self.lines
        for end in range(len(loc), -1, -1):
            if (line := lines.get(tuple(loc[:end]))) is not None:
                return line
        return 1

    def where(self, loc: Loc) -> str:
        return f"{self.path}:{self.line_of(loc)}"


class _Builder(yaml.SafeLoader):
    """SafeLoader whose `construct_document` we bypass: we walk the node graph ourselves."""


_MarkedFast: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", _Builder)  # type: ignore[assignment]


class _Unusual(Exception):
    """The fast path met something the marked walk must handle (and maybe report)."""


class _FastLoader(_MarkedFast):  # type: ignore[valid-type,misc]
    """Plain data, as the walk would build it, or `_Unusual`."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[str, Any]:
        self.flatten_mapping(node)
        result: dict[str, Any] = {}
        for key_node, value_node in node.value:
            key = self.construct_object(key_node, deep=True)
            if key is None or not isinstance(key, (str, int, float, bool)):
                raise _Unusual
            key = key if isinstance(key, str) else str(key)
            if key in result:
                raise _Unusual
            result[key] = self.construct_object(value_node, deep=True)
        return result

    def construct_yaml_map(self, node: yaml.MappingNode) -> Any:
        yield self.construct_mapping(node)

    def construct_yaml_seq(self, node: yaml.SequenceNode) -> Any:
        yield [self.construct_object(item, deep=True) for item in node.value]

    def _unusual(self, node: yaml.Node) -> Any:
        raise _Unusual


_FastLoader.add_constructor("tag:yaml.org,2002:map", _FastLoader.construct_yaml_map)
_FastLoader.add_constructor("tag:yaml.org,2002:seq", _FastLoader.construct_yaml_seq)
for _tag in ("set", "omap", "pairs"):
    _FastLoader.add_constructor(f"tag:yaml.org,2002:{_tag}", _FastLoader._unusual)


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


def _walk(builder: type[yaml.SafeLoader], text: str, source: Source) -> Any:
    """The marked walk: data, `source.lines`, and a problem per bad key."""
    loader = builder(text)
    try:
        node = loader.get_single_node()
        return {} if node is None else _construct(loader, node, (), source)  # type: ignore[arg-type]
    finally:
        loader.dispose()


def _slow(text: str, source: Source) -> None:
    source._lines = {}
    source.problems.clear()
    try:
        source.data = _walk(_MarkedFast, text, source)
    except yaml.YAMLError:
        if _MarkedFast is _Builder:
            raise
        source._lines = {}
        source.problems.clear()
        source.data = _walk(_Builder, text, source)


def load_yaml(path: Path, text: str | None = None) -> Source:
    """Parse one YAML document; syntax errors become problems, never tracebacks."""
    source = Source(path=path, data=None)
    try:
        if text is None:
            text = path.read_text(encoding="utf-8")
        try:
            data = yaml.load(text, Loader=_FastLoader)  # a SafeLoader subclass: standard tags only
        except (_Unusual, yaml.YAMLError):
            _slow(text, source)
        else:
            source.data = {} if data is None else data
            source.text = text
    except OSError as exc:
        source.problems.append(f"{path}:1: cannot read file: {exc.strerror or exc}")
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 1
        source.problems.append(f"{path}:{line}: invalid YAML: {exc.problem or exc.context}")
    except yaml.YAMLError as exc:
        source.problems.append(f"{path}:1: invalid YAML: {exc}")
    return source
