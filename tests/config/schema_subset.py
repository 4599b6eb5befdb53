"""A JSON Schema (2020-12) validator for the keywords `idp schema` uses, for the tests
(the `jsonschema` package is not a dependency). An unknown keyword is an error, so a
schema that starts using one cannot pass unchecked."""

from __future__ import annotations

import re
from typing import Any

ANNOTATIONS = frozenset({"$schema", "$defs", "title", "description", "default", "examples", "writeOnly",
                         "readOnly", "deprecated", "format", "discriminator", "x-env"})
TYPES = {
    "string": lambda v: isinstance(v, str),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
}


def errors(root: dict[str, Any], value: Any, schema: dict[str, Any] | None = None, at: str = "") -> list[str]:
    """Every violation of `schema` (default: `root`) by `value`, each `path: reason`."""
    schema = root if schema is None else schema
    found: list[str] = []
    where = at or "(top level)"
    for keyword, argument in schema.items():
        if keyword in ANNOTATIONS:
            continue
        if keyword == "$ref":
            target: Any = root
            for part in argument.removeprefix("#/").split("/"):
                target = target[part]
            found += errors(root, value, target, at)
        elif keyword == "type":
            names = argument if isinstance(argument, list) else [argument]
            if not any(TYPES[name](value) for name in names):
                found.append(f"{where}: {value!r} is not of type {argument}")
        elif keyword == "enum":
            if value not in argument:
                found.append(f"{where}: {value!r} not in {argument}")
        elif keyword == "const":
            if value != argument:
                found.append(f"{where}: {value!r} != {argument!r}")
        elif keyword in ("anyOf", "oneOf"):
            passing = sum(not errors(root, value, option, at) for option in argument)
            if passing == 0 or (keyword == "oneOf" and passing > 1):
                found.append(f"{where}: {value!r} matches {passing} of the {keyword} options")
        elif keyword == "allOf":
            for option in argument:
                found += errors(root, value, option, at)
        elif keyword == "properties":
            if isinstance(value, dict):
                for name, sub in argument.items():
                    if name in value:
                        found += errors(root, value[name], sub, f"{at}.{name}".lstrip("."))
        elif keyword == "additionalProperties":
            if isinstance(value, dict):
                for name in set(value) - set(schema.get("properties", {})):
                    if argument is False:
                        found.append(f"{where}: unknown key {name!r}")
                    elif isinstance(argument, dict):
                        found += errors(root, value[name], argument, f"{at}.{name}".lstrip("."))
        elif keyword == "required":
            if isinstance(value, dict):
                found += [f"{where}: {name!r} is required" for name in argument if name not in value]
        elif keyword == "items":
            if isinstance(value, list):
                for i, item in enumerate(value):
                    found += errors(root, item, argument, f"{at}.{i}".lstrip("."))
        elif keyword in ("minItems", "maxItems", "minLength", "maxLength"):
            if isinstance(value, list if keyword.endswith("Items") else str):
                if (len(value) < argument) if keyword.startswith("min") else (len(value) > argument):
                    found.append(f"{where}: length {len(value)} breaks {keyword} {argument}")
        elif keyword == "pattern":
            if isinstance(value, str) and not re.search(argument, value):
                found.append(f"{where}: {value!r} does not match {argument}")
        elif keyword in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
            if TYPES["number"](value):
                ok = {"minimum": value >= argument, "maximum": value <= argument,
                      "exclusiveMinimum": value > argument, "exclusiveMaximum": value < argument}[keyword]
                if not ok:
                    found.append(f"{where}: {value} breaks {keyword} {argument}")
        else:
            raise AssertionError(f"schema keyword {keyword!r} at {where} is not supported by this validator")
    return found
