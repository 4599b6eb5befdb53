"""Validation errors in the product's words (issue 18 item 5): `idp check` says what a
value must be ("`type` is required", "must be one of: public, confidential"), never
pydantic's wording or a regular expression.

`describe` turns one pydantic error into the location to report and the message. The
location is the data's own path: a discriminated union's tag (`providers.0.password.x`)
is dropped, so the line is that of the value itself. Inputs are echoed only where they
cannot be secrets (enumerated values, unknown keys).
"""

from __future__ import annotations

import difflib
import re
from typing import Any

from pydantic import BaseModel
from pydantic_core import ErrorDetails

from engine.config.env import _shape
from engine.config.yaml_source import Loc

# What each pattern of the models means, as a person would say it.
PATTERN_WORDS: dict[str, str] = {
    r"^[a-z0-9][a-z0-9_-]{0,62}$": "lowercase letters, digits, `-` and `_`, at most 63 characters,"
                                   " starting with a letter or digit",
    r"^[0-9a-f]{64}$": "64 lowercase hexadecimal digits (the SHA-256 of the secret)",
    r"^[A-Za-z0-9_.:{}-]{0,64}$": "at most 64 letters, digits and `_ . : { } -`",
}

# Errors whose message does not depend on the input: (type, message with {ctx} fields).
_PLAIN: dict[str, str] = {
    "int_type": "must be a whole number",
    "int_parsing": "must be a whole number",
    "int_from_float": "must be a whole number",
    "float_type": "must be a number",
    "float_parsing": "must be a number",
    "bool_type": "must be true or false",
    "bool_parsing": "must be true or false",
    "string_type": "must be text",
    "list_type": "must be a list",
    "dict_type": "must be a mapping (key: value)",
    "model_type": "must be a mapping (key: value)",
    "model_attributes_type": "must be a mapping (key: value)",
    "greater_than_equal": "must be at least {ge}",
    "greater_than": "must be more than {gt}",
    "less_than_equal": "must be at most {le}",
    "less_than": "must be less than {lt}",
    "too_short": "must have at least {min_length} item(s)",
    "too_long": "must have at most {max_length} item(s)",
    "string_too_long": "must be at most {max_length} characters",
}


def describe(error: ErrorDetails, model: type[BaseModel], data: Any, provider_types: list[str]) -> tuple[Loc, str]:
    """(location in the data, message) for one error of validating `data` as `model`."""
    loc, parent = data_loc(model, data, tuple(error["loc"]))
    kind, ctx = error["type"], error.get("ctx") or {}
    message = error["msg"]
    if kind == "missing" and loc:
        return loc[:-1], f"`{loc[-1]}` is required"
    if kind == "extra_forbidden" and loc:
        known = list(parent.model_fields) if parent is not None else []
        return loc, "unknown key" + _did_you_mean(str(loc[-1]), known)
    if kind == "union_tag_invalid":
        tag = str(ctx.get("tag"))
        return loc, (f"unknown provider type {tag!r}; installed types: {', '.join(provider_types)}"
                     + _did_you_mean(tag, provider_types, quote=True))
    if kind == "union_tag_not_found":
        return loc, f"`type` is required; installed types: {', '.join(provider_types)}"
    if kind == "literal_error":
        allowed = re.findall(r"'((?:[^'\\]|\\.)*)'", str(ctx.get("expected", "")))
        value = error.get("input")
        shown = repr(value) if isinstance(value, (str, int, float)) and len(str(value)) <= 80 else "the value"
        return loc, f"{shown} is not one of: {', '.join(allowed)}" + _did_you_mean(str(value), allowed, quote=True)
    if kind == "string_pattern_mismatch":
        pattern = str(ctx.get("pattern", ""))
        return loc, f"must be {PATTERN_WORDS.get(pattern, f'of the form {pattern}')}"
    if kind == "string_too_short":
        minimum = ctx.get("min_length", 1)
        return loc, "must not be empty" if minimum == 1 else f"must be at least {minimum} characters"
    if kind in _PLAIN:
        return loc, _PLAIN[kind].format(**ctx)
    if message.startswith("Value error, "):
        message = message[len("Value error, "):]
    return loc, message


def _did_you_mean(word: str, choices: list[str], quote: bool = False) -> str:
    """A suggestion: a key as `key`, a value as 'value' (as the other messages write them)."""
    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    if not close:
        return ""
    return f"; did you mean {close[0]!r}?" if quote else f"; did you mean `{close[0]}`?"


def data_loc(model: type[BaseModel], data: Any, loc: Loc) -> tuple[Loc, type[BaseModel] | None]:
    """The error's path without union tags, and the model of the mapping holding its last
    key (for suggestions), following the annotations alongside the data."""
    annotation: Any = model
    value = data
    path: list[str | int] = []
    parts = list(loc)
    parent: type[BaseModel] | None = None
    for index, part in enumerate(parts):
        shape = _shape(annotation)
        if isinstance(part, str) and shape.tags and part in shape.tags and isinstance(value, dict) \
                and value.get("type") == part:
            annotation = shape.tags[part]  # the discriminator's step: not in the data
            continue
        current = shape.model_for(value) if isinstance(value, dict) else None
        if index == len(parts) - 1:
            parent = current
        if isinstance(part, int):
            annotation = shape.list_item
        elif current is not None:
            info = current.model_fields.get(part)
            annotation = info.annotation if info is not None else Any
        else:
            annotation = shape.dict_value
        path.append(part)
        try:
            value = value[part]
        except (KeyError, IndexError, TypeError):
            value = None
    return tuple(path), parent
