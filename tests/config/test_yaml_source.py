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
    "x: &a {k: v}\ny: *a\nz:\n  <<: *a\n  m: 2\n",  # anchors and merges: the walk builds them
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
