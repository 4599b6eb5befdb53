"""YAML loading that remembers where every value came from.

`load_yaml` returns plain Python data (via `yaml.safe_load` semantics: only standard tags)
plus a map from each value's path (`("clients", 0, "redirect_uris", 1)`) to its line, so
validation errors can be reported as `file:line: message` (STYLE.md §5). Duplicate mapping
keys, which PyYAML silently overwrites, are errors here.

Two paths, one result. The fast path (10,000 realm files must load in seconds) builds
plain data straight from libyaml's events (`CSafeLoader`'s parser, when PyYAML was built
with it), refusing duplicate or non-scalar keys as it goes; the line map is only built when some
message needs a line (`Source.lines`, computed on first use from the kept text). A file
the fast path refuses (duplicate keys, odd keys or tags, syntax errors) goes through the
marked node walk, which reports each problem at its line; syntax errors are re-parsed by
the pure-Python parser so that messages do not depend on how PyYAML was built.

A configuration file is input like any other (a realm file may be generated from a
tenant's input), so it is bounded before anything is built from it (STYLE.md §5): at most
`MAX_FILE_BYTES`, no anchors or aliases (a "billion laughs" file expands exponentially:
Kubernetes CVE-2019-11253), no scalar longer than `MAX_SCALAR_CHARS`, no nesting deeper
than `MAX_DEPTH`. The event stream is checked as it is read (iteratively, so a 10,000-deep
`[[[[` is one problem line, not a RecursionError), and to its end before the recursive
marked walk ever sees the file.
"""

from __future__ import annotations

import datetime
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

Loc = tuple[str | int, ...]

MAX_FILE_BYTES = 1024 * 1024  # a realm with hundreds of clients is ~100 KB
MAX_SCALAR_CHARS = 8192  # URLs, secrets, descriptions, PEM paths: all far shorter
MAX_DEPTH = 20  # the deepest real setting (a plugin's options) is ~6 levels down
ALIASES_REFUSED = "anchors and aliases are not allowed"


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


class _Refused(Exception):
    """A file over one of the limits: one problem at `line` (1-based), nothing built."""

    def __init__(self, line: int, message: str):
        super().__init__(message)
        self.line, self.message = line, message


def _limits(event: yaml.Event, depth: int) -> None:
    """Refuse an event that breaks a limit; `depth` is the number of open collections."""
    if getattr(event, "anchor", None) is not None or type(event) is yaml.AliasEvent:
        raise _Refused(event.start_mark.line + 1, ALIASES_REFUSED)
    kind = type(event)
    if (kind is yaml.MappingStartEvent or kind is yaml.SequenceStartEvent) and depth >= MAX_DEPTH:
        raise _Refused(event.start_mark.line + 1, f"nesting deeper than {MAX_DEPTH}")
    if kind is yaml.ScalarEvent and len(event.value) > MAX_SCALAR_CHARS:
        raise _Refused(event.start_mark.line + 1, f"value longer than {MAX_SCALAR_CHARS} characters")


def _scan_rest(get_event: Any, depth: int) -> None:
    """Check the limits on the rest of the stream (events only, nothing built), so that
    the marked walk that follows never meets an alias or a deep nest."""
    while True:
        event = get_event()
        kind = type(event)
        _limits(event, depth)
        if kind is yaml.MappingStartEvent or kind is yaml.SequenceStartEvent:
            depth += 1
        elif kind is yaml.MappingEndEvent or kind is yaml.SequenceEndEvent:
            depth -= 1
        elif kind is yaml.StreamEndEvent:
            return


class _Builder(yaml.SafeLoader):
    """SafeLoader whose `construct_document` we bypass: we walk the node graph ourselves.
    Its composer checks the limits too (the pure-Python parser may read further than
    libyaml did before a syntax error)."""

    _depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        _limits(self.peek_event(), self._depth)
        self._depth += 1
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


_MarkedFast: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", _Builder)  # type: ignore[assignment]


class _Unusual(Exception):
    """The fast path met something the marked walk must handle (and maybe report)."""


# Plain scalars that start with a letter are strings, except these words (YAML 1.1 bools and
# nulls, which PyYAML's resolver knows in a few spellings: those go through the resolver).
_RESOLVED_WORDS = frozenset({"yes", "no", "true", "false", "on", "off", "null"})

# Other plain scalars (numbers, dates, the words above) as PyYAML's resolver and safe
# constructor make them: the same text always makes the same immutable value, and the
# realm files of a deployment repeat them (10,000 files, the same limits and lifetimes).
_RESOLVED: dict[str, Any] = {}
_RESOLVED_TYPES = frozenset({type(None), bool, int, float, str, datetime.date, datetime.datetime})


def _fast_data(text: str) -> Any:
    """Plain data from libyaml's event stream, as the marked walk would build it, or
    `_Unusual` for anything the walk must handle: merge keys, explicit tags, duplicate or
    non-scalar keys (the rest of the stream is then checked against the limits first);
    `_Refused` for a file over a limit."""
    loader = _MarkedFast(text)
    stack: list[list[Any]] = []  # [container, pending key (1-tuple) or None, is mapping]
    try:
        return _fast_events(loader, stack)
    except _Unusual:
        _scan_rest(loader.get_event, len(stack))
        raise
    finally:
        loader.dispose()


def _fast_events(loader: yaml.SafeLoader, stack: list[list[Any]]) -> Any:
    get_event, resolve, construct = loader.get_event, loader.resolve, loader.construct_object
    root: Any = None
    get_event()  # stream start
    if isinstance(get_event(), yaml.StreamEndEvent):
        return None
    while True:
        event = get_event()
        kind = type(event)
        if kind is yaml.ScalarEvent:
            if event.anchor is not None:
                raise _Refused(event.start_mark.line + 1, ALIASES_REFUSED)
            raw = event.value
            if len(raw) > MAX_SCALAR_CHARS:
                _limits(event, len(stack))
            if event.tag is not None and event.tag != "!":
                raise _Unusual
            if not event.implicit[0]:
                value: Any = raw  # quoted: a string
            elif raw and raw[0].isalpha() and raw.lower() not in _RESOLVED_WORDS:
                value = raw
            elif (value := _RESOLVED.get(raw, _RESOLVED)) is _RESOLVED:
                tag = resolve(yaml.ScalarNode, raw, (True, False))
                value = raw if tag == "tag:yaml.org,2002:str" else construct(
                    yaml.ScalarNode(tag, raw, event.start_mark, event.end_mark, event.style))
                if type(value) in _RESOLVED_TYPES and len(_RESOLVED) < 4096:
                    _RESOLVED[raw] = value
        elif kind is yaml.MappingStartEvent or kind is yaml.SequenceStartEvent:
            if event.anchor is not None or len(stack) >= MAX_DEPTH:
                _limits(event, len(stack))
            if event.tag is not None and not event.implicit:
                raise _Unusual
            mapping = kind is yaml.MappingStartEvent
            stack.append([{} if mapping else [], None, mapping])
            continue
        elif kind is yaml.MappingEndEvent or kind is yaml.SequenceEndEvent:
            value = stack.pop()[0]
        elif kind is yaml.DocumentEndEvent:
            break
        else:  # an alias
            raise _Refused(event.start_mark.line + 1, ALIASES_REFUSED)
        if not stack:
            root = value
            continue
        top = stack[-1]
        if not top[2]:
            top[0].append(value)
        elif top[1] is None:
            if value is None or not isinstance(value, (str, int, float, bool)):
                raise _Unusual
            key = value if isinstance(value, str) else str(value)
            if key == "<<" or key in top[0]:
                raise _Unusual
            top[1] = (key,)
        else:
            top[0][top[1][0]] = value
            top[1] = None
    if not isinstance(get_event(), yaml.StreamEndEvent):
        raise _Unusual  # several documents: the walk reports it
    return root


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
            text = _read(path)
        if len(text) > MAX_FILE_BYTES or len(text.encode("utf-8", "surrogatepass")) > MAX_FILE_BYTES:
            raise _Refused(1, f"file larger than {MAX_FILE_BYTES} bytes")
        try:
            data = _fast_data(text)
        except (_Unusual, yaml.YAMLError):
            _slow(text, source)
        else:
            source.data = {} if data is None else data
            source.text = text
    except _Refused as exc:
        source.data, source._lines = None, {}
        source.problems[:] = [f"{path}:{exc.line}: {exc.message}"]
    except OSError as exc:
        source.problems.append(f"{path}:1: cannot read file: {exc.strerror or exc}")
    except UnicodeDecodeError as exc:
        source.problems.append(f"{path}:1: cannot read file: not UTF-8 ({exc.reason} at byte {exc.start})")
    except yaml.MarkedYAMLError as exc:
        source.problems.append(_syntax_problem(path, exc, text))
    except yaml.YAMLError as exc:
        source.problems.append(f"{path}:1: invalid YAML: {exc}")
    return source


def _syntax_problem(path: Path, exc: yaml.MarkedYAMLError, text: str | None) -> str:
    """`file:line: invalid YAML: ...` at the line a person must fix: an unclosed bracket or
    quote is reported where it opens (the parser only notices at the end of the file)."""
    mark, context = exc.problem_mark or exc.context_mark, exc.context_mark
    problem = exc.problem or exc.context or "syntax error"
    at_end = mark is not None and text is not None and not text[mark.index:].strip()
    if at_end and context is not None and exc.context:
        what = exc.context.removeprefix("while parsing ").removeprefix("while scanning ")
        return f"{path}:{context.line + 1}: invalid YAML: {what} starting here is never closed ({problem})"
    if "'\\t'" in problem:
        problem += " (indent with spaces, not tabs)"
    return f"{path}:{mark.line + 1 if mark else 1}: invalid YAML: {problem}"


def _read(path: Path) -> str:
    """The file's text, refusing what is not a regular file (a FIFO would block) and
    reading at most one byte past the limit (a huge file is never read whole)."""
    # O_NONBLOCK: opening a FIFO for reading would wait for a writer.
    descriptor = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    with open(descriptor, "rb") as file:
        if not stat.S_ISREG(os.fstat(descriptor).st_mode):
            raise OSError(0, "not a regular file")
        data = file.read(MAX_FILE_BYTES + 1)
    if len(data) > MAX_FILE_BYTES:
        raise _Refused(1, f"file larger than {MAX_FILE_BYTES} bytes")
    return data.decode("utf-8")
