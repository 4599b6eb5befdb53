"""The YAML fast path (libyaml events, line map on demand) builds exactly what the marked
node walk builds, and hands it everything unusual so problems keep their `file:line`."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.config import yaml_source

SAME = [
    "a: 1\n200: x\ntrue: y\nb: [1, {c: d}]\n",
    "a: yes\nb: No\nc: tRUE\nd: ~\ne: null\nf: 1.5\ng: .inf\nh: 0x1F\ni: '123'\nj: \"x\"\nk: 1_000\n"
    "l: 1:30\nm: Null\nn: off\no:\np: [a, 'b', 3]\nq: {}\nr: []\ns: |\n  multi\n  line\nt: 2020-01-01\n",
    "x: {k: v}\nz:\n  <<: {k: w}\n  m: 2\n",  # merge keys (without aliases): the walk builds them
    "",
    "- 1\n- two\n",
    "just a scalar",
    "a: !!str 12\n",
]


@pytest.mark.parametrize("text", SAME)
def test_fast_path_matches_the_marked_walk(text):
    fast = yaml_source.load_yaml(Path("f.yaml"), text)
    walked = yaml_source.Source(Path("f.yaml"), None)
    yaml_source._slow(text, walked)
    assert not fast.problems and not walked.problems
    assert fast.data == walked.data
    assert [type(v) for v in _leaves(fast.data)] == [type(v) for v in _leaves(walked.data)]
    assert fast.lines == walked.lines  # built on demand, the same map


@pytest.mark.parametrize(("text", "problem"), [
    ("name: a\nclients: []\nname: b\n", "f.yaml:3: duplicate key 'name'"),
    ("? [a]\n: 1\n", "f.yaml:1: mapping keys must be plain scalars"),
    ("a: 1\n---\nb: 2\n", "f.yaml:2: invalid YAML"),
])
def test_unusual_files_are_reported_by_the_walk(text, problem):
    assert yaml_source.load_yaml(Path("f.yaml"), text).problems[0].startswith(problem)


def _leaves(value):
    if isinstance(value, dict):
        for key, item in value.items():
            yield key
            yield from _leaves(item)
    elif isinstance(value, list):
        for item in value:
            yield from _leaves(item)
    else:
        yield value


def test_repeated_plain_scalars_resolve_the_same_in_every_file():
    """Resolved plain scalars (numbers, dates, YAML 1.1 booleans) are remembered across
    files (issue 7: 10,000 realm files repeat them): a later file gets the same values
    and types as the first and as PyYAML's safe loader."""
    import yaml

    text = SAME[1]
    first = yaml_source.load_yaml(Path("a.yaml"), text).data
    assert "1_000" in yaml_source._RESOLVED and "2020-01-01" in yaml_source._RESOLVED
    later = yaml_source.load_yaml(Path("b.yaml"), text).data
    assert first == later == yaml.safe_load(text)
    assert [type(v) for v in _leaves(later)] == [type(v) for v in _leaves(yaml.safe_load(text))]


# --------------------------------------------------------------------- limits (issue 23 item 3)

BILLION_LAUGHS = "name: x\na: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 9)}]\n" for i in range(8))


@pytest.fixture(params=["libyaml", "pure-python"])
def parser(request, monkeypatch):
    """Both parsers PyYAML may be built with: the limits hold on each."""
    if request.param == "pure-python":
        monkeypatch.setattr(yaml_source, "_MarkedFast", yaml_source._Builder)
    elif yaml_source._MarkedFast is yaml_source._Builder:
        pytest.skip("PyYAML built without libyaml")
    return request.param


@pytest.mark.parametrize(("text", "problem"), [
    (BILLION_LAUGHS, "f.yaml:2: anchors and aliases are not allowed"),
    ("a: &x 1\nb: *x\n", "f.yaml:1: anchors and aliases are not allowed"),
    ("base: &b {k: v}\nother:\n  <<: *b\n", "f.yaml:1: anchors and aliases are not allowed"),
    # an alias after something the fast path hands to the walk (a duplicate key) is still seen first
    ("a: 1\na: 2\n" + BILLION_LAUGHS[len("name: x\n"):], "f.yaml:3: anchors and aliases are not allowed"),
    ("name: x\nclients: " + "[" * 10_000 + "]" * 10_000 + "\n", "f.yaml:2: nesting deeper than 20"),
    ("name: x\nclients: " + "[" * 10_000 + "\n", "f.yaml:2: nesting deeper than 20"),  # and unclosed
    ("name: x\nname: y\nclients: " + "[" * 10_000 + "\n", "f.yaml:3: nesting deeper than 20"),
    ("".join(f"{'  ' * i}k{i}:\n" for i in range(30)) + "  " * 30 + "v\n", "f.yaml:21: nesting deeper than 20"),
    ("name: x\ndisplay_name: " + "a" * 100_000 + "\n", "f.yaml:2: value longer than 8192 characters"),
    ("name: x\n? " + "k" * 9000 + "\n: v\n", "f.yaml:2: value longer than 8192 characters"),
    ("name: x\n# " + "a" * (2 * 1024 * 1024) + "\n", "f.yaml:1: file larger than 1048576 bytes"),
], ids=["billion-laughs", "alias", "merge-alias", "alias-after-duplicate", "deep-flow", "deep-unclosed",
        "deep-after-duplicate", "deep-block", "long-value", "long-key", "large-file"])
def test_hostile_files_are_one_problem_line_each(parser, text, problem):
    """Issue 23 item 3 (CVE-2019-11253 class): a bomb, a deep nest or an oversized file or
    value is one `file:line` problem: nothing expanded, no RecursionError, no data."""
    source = yaml_source.load_yaml(Path("f.yaml"), text)
    assert source.problems == [problem]
    assert source.data is None


def test_a_large_file_is_not_read_whole(tmp_path):
    big = tmp_path / "big.yaml"
    with open(big, "wb") as file:
        file.write(b"name: x\n")
        file.truncate(64 * 1024 * 1024)  # sparse: 64 MiB of NULs
    source = yaml_source.load_yaml(big)
    assert source.problems == [f"{big}:1: file larger than 1048576 bytes"]


def test_a_file_that_is_not_utf8_or_not_regular_is_a_problem(tmp_path):
    latin = tmp_path / "latin.yaml"
    latin.write_bytes("name: caf\xe9\n".encode("latin-1"))
    assert yaml_source.load_yaml(latin).problems[0].startswith(f"{latin}:1: cannot read file: not UTF-8")
    fifo = tmp_path / "fifo.yaml"
    import os

    os.mkfifo(fifo)
    assert yaml_source.load_yaml(fifo).problems == [f"{fifo}:1: cannot read file: not a regular file"]


def test_limits_leave_ordinary_files_alone(parser):
    text = "".join(f"{'  ' * i}k{i}:\n" for i in range(19)) + "  " * 19 + "v: " + "a" * 8192 + "\n"
    source = yaml_source.load_yaml(Path("f.yaml"), text)
    assert not source.problems
