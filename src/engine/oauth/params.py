"""Reading request parameters: query string and form bodies (RFC 6749 §3.1, §3.2), and a
JSON body on the token endpoint as the seed's examples send it. Pure parsing of what a
`Call` carries; reading the body off the wire, within its deadline, is the web layer's
(engine.web.adapter). A parameter sent twice is an error (§3.1: "Request and response
parameters MUST NOT be included more than once").

Every endpoint reads its parameters here, so the input rules hold once for all of them:
no control characters (C0, NUL included, and DEL) and no lone surrogates in any name or
value (no OAuth or OIDC parameter, form field or password has a use for them; they break
logs, mail headers and PostgreSQL text, which refuses NUL where SQLite stores it); a JSON
body is one flat object of string (or integer) values, each name once, parsed without
recursion trouble however deep the brackets go."""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import parse_qsl

from multidict import MultiMapping

from engine.errors import InvalidRequest
from engine.exchange import Call

MAX_BODY = 64 * 1024
FORM = "application/x-www-form-urlencoded"
# C0 controls (NUL to US), DEL, and UTF-16 surrogates (only a JSON `\ud800` escape can make
# one: valid UTF-8 never decodes to a surrogate; neither database can store one).
FORBIDDEN = re.compile(r"[\x00-\x1f\x7f\ud800-\udfff]")


async def form_params(call: Call, *, allow_json: bool = False, query: bool = False) -> dict[str, str]:
    """Parameters of a POST (form, or JSON if allowed) or, with `query`, of a GET."""
    if call.method in ("GET", "HEAD"):
        if not query:
            raise InvalidRequest("use POST")
        return single_valued(call.query)
    length = call.content_length
    if length and length > MAX_BODY:
        raise InvalidRequest("request body too large")
    # The header as clients send it is compared first: parsing it (`content_type`) costs
    # more than the rest of a small form (issue 7: every token and introspection request).
    if call.headers.get("Content-Type") == FORM or call.content_type == FORM:
        body = call.body_now()  # a small form arrives with the request head: no coroutine
        if body is None:
            return form_body(await bounded_body(call))
        if len(body) > MAX_BODY:
            raise InvalidRequest("request body too large")
        return form_body(body)
    content_type = call.content_type
    if content_type == "application/json" and allow_json:
        return json_body(await bounded_body(call))
    if not content_type or content_type == "application/octet-stream":
        body = await bounded_body(call)
        if not body:
            return single_valued(call.query) if query else {}
    raise InvalidRequest("use Content-Type: application/x-www-form-urlencoded")


async def bounded_body(call: Call) -> bytes:
    """The call's body, at most `MAX_BODY` bytes (a transport reads no more than one byte
    past it: engine.web.adapter.read_body)."""
    body = await call.body()
    if len(body) > MAX_BODY:
        raise InvalidRequest("request body too large")
    return body


def form_body(body: bytes) -> dict[str, str]:
    """An `application/x-www-form-urlencoded` body (UTF-8, as RFC 6749 Appendix B says):
    what `request.post()` gives, without building a multidict on the hot paths."""
    try:
        text = body.decode()
        escaped = "%" in text or "+" in text
        if escaped:  # the escapes must decode to UTF-8 too
            pairs = parse_qsl(text, keep_blank_values=True, errors="strict")
    except UnicodeDecodeError:
        raise InvalidRequest("the form body is not valid UTF-8") from None
    if not escaped:  # `grant_type=client_credentials`: parse_qsl's pairs, split here
        pairs = [(name, value) for name, _, value in (field.partition("=") for field in text.split("&") if field)]
    params: dict[str, str] = {}
    for key, value in pairs:
        if key in params:
            raise InvalidRequest(f"parameter {_shown(key)} was sent more than once")
        params[key] = value
    if not escaped and FORBIDDEN.search(text) is None:  # every name and value is a slice of the text
        return params
    return checked(params)


class _NotFlat(ValueError):
    """A JSON body that is not one flat object of strings (raised from inside the parser)."""


def _flat_object(pairs: list[tuple[str, Any]]) -> dict[str, str]:
    """`object_pairs_hook`: every JSON object of the body passes here, innermost first."""
    params: dict[str, str] = {}
    for key, value in pairs:
        if key in params:
            raise _NotFlat(f"parameter {_shown(key)} was sent more than once")
        if isinstance(value, str):
            params[key] = value
        elif isinstance(value, int) and not isinstance(value, bool):
            params[key] = str(value)
        else:  # objects, arrays, booleans, null, fractions: no token parameter is one
            raise _NotFlat("the JSON body must be one object of string values")
    return params


def _no_constant(name: str) -> Any:
    raise _NotFlat("the JSON body must be one object of string values")  # NaN, Infinity


def json_body(body: bytes) -> dict[str, str]:
    """A JSON body (RFC 8259) as token parameters: one flat object, names once each."""
    try:
        text = body.decode().strip() or "{}"
    except UnicodeDecodeError:
        raise InvalidRequest("the JSON body is not valid UTF-8") from None
    if not text.startswith("{"):  # an array or a scalar is refused before any parsing
        raise InvalidRequest("the JSON body must be one object of string values")
    try:
        data = json.loads(text, object_pairs_hook=_flat_object, parse_constant=_no_constant,
                          parse_float=_no_constant)
    except _NotFlat as exc:
        raise InvalidRequest(str(exc)) from None
    except RecursionError:  # `{"a": [[[[…` far past any sane depth: refused, not a 500
        raise InvalidRequest("the JSON body is nested too deeply") from None
    except ValueError:
        raise InvalidRequest("the JSON body is malformed") from None
    if not isinstance(data, dict):
        raise InvalidRequest("the JSON body must be one object of string values")
    return checked(data)


def checked(params: dict[str, str]) -> dict[str, str]:
    """`params`, unless a name or value holds a control character or a surrogate."""
    for key, value in params.items():
        if FORBIDDEN.search(value) or FORBIDDEN.search(key):
            raise InvalidRequest(f"parameter {_shown(key)} contains a control character")
    return params


def _shown(key: str) -> str:
    """A parameter name as an error description may quote it: printable, bounded."""
    return repr(FORBIDDEN.sub("?", key[:40]))


def single_valued(values: MultiMapping[str]) -> dict[str, str]:
    params: dict[str, str] = {}
    for key in values.keys():
        found = values.getall(key)
        if len(found) > 1:
            raise InvalidRequest(f"parameter {_shown(key)} was sent more than once")
        value = found[0]
        if not isinstance(value, str):
            raise InvalidRequest(f"parameter {_shown(key)} must be a string")
        params[key] = value
    return checked(params)
