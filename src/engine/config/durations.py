"""Durations written as `30s`, `10m`, `12h`, `45d`, `2w` (or a bare number of seconds)."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated

from pydantic import BeforeValidator, PlainSerializer, WithJsonSchema

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_PATTERN = re.compile(r"^\s*(\d+)\s*([smhdw]?)\s*$")


def parse_duration(value: object) -> timedelta:
    if isinstance(value, timedelta):
        return value
    if isinstance(value, bool):
        raise ValueError("a duration is a number with a unit: 30s, 10m, 12h, 45d, 2w")
    if isinstance(value, int):
        return timedelta(seconds=value)
    if isinstance(value, str) and (match := _PATTERN.match(value)):
        return timedelta(seconds=int(match.group(1)) * _UNITS[match.group(2) or "s"])
    raise ValueError(f"invalid duration {value!r}: use a number with a unit: 30s, 10m, 12h, 45d, 2w")


def format_duration(value: timedelta) -> str:
    seconds = int(value.total_seconds())
    for unit in ("w", "d", "h", "m"):
        if seconds and seconds % _UNITS[unit] == 0:
            return f"{seconds // _UNITS[unit]}{unit}"
    return f"{seconds}s"


Duration = Annotated[
    timedelta,
    BeforeValidator(parse_duration),
    PlainSerializer(format_duration, return_type=str),
    WithJsonSchema(
        {"type": ["string", "integer"], "pattern": r"^\d+[smhdw]?$", "examples": ["10m", "45d"]}
    ),
]
