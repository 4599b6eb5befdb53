"""What the protocol core is asked (`Call`) and what it answers (`Answer`), without any
HTTP framework (issue 17 item 2, as Authlib keeps its core apart from Flask and Django).

An endpoint of the core is `async (services, realm, call) -> Answer`; protocol errors are
raised as `engine.errors.OAuthError`s and rendered by the web layer, once. The aiohttp
handlers in `engine.web` only turn a request into a `Call` and an `Answer` into a response.

- Headers are a case-insensitive mapping. The web layer passes its own (read-only) view,
  never a copy: `Call` is built for every token and introspection request.
- The body is read on demand, through `Call.body()`: an endpoint counts its rate limits
  before a byte of the body is read (a flood costs no body reads), and reading it is the
  transport's business (its deadline, its size limit).
- Answer headers are shared constants (`JSON_NO_STORE`, ...), not built per request.
- Cookies: the request's are `Call.cookies` (a read-only name -> value mapping); those to
  set go out as `Answer.cookies`, gathered on the way by a `CookieJar` (the browser flows
  set cookies in several steps: a session, a flow binding, a CSRF secret).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from http.cookies import CookieError, SimpleCookie
from types import MappingProxyType
from typing import Any, Protocol
from urllib.parse import urlencode

import orjson
from multidict import CIMultiDict, CIMultiDictProxy, MultiDict, MultiDictProxy, MultiMapping

NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
NO_STORE_HEADERS = CIMultiDictProxy(CIMultiDict(NO_STORE))
JSON_NO_STORE = CIMultiDictProxy(CIMultiDict({"Content-Type": "application/json; charset=utf-8", **NO_STORE}))
_NO_HEADERS: CIMultiDictProxy[str] = CIMultiDictProxy(CIMultiDict())
_NO_QUERY: MultiDictProxy[str] = MultiDictProxy(MultiDict())
_NO_COOKIES: Mapping[str, str] = MappingProxyType({})
_NO_ROUTE: Mapping[str, str] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class Cookie:
    """A cookie to set (or, `cleared`, to remove) with the answer. `None` attributes are
    left out of the `Set-Cookie` line."""

    name: str
    value: str
    path: str = "/"
    max_age: int | None = None
    secure: bool | None = False
    httponly: bool | None = True
    samesite: str | None = "Lax"
    cleared: bool = False  # an empty value that expired long ago: the browser drops it

    @classmethod
    def clear(cls, name: str, path: str = "/") -> Cookie:
        return cls(name, "", path, max_age=0, secure=None, httponly=None, samesite=None, cleared=True)


class CookieSink(Protocol):
    """Where a helper sets a cookie: a `CookieJar`, or (the web layer) a response."""

    def set_cookie(self, name: str, value: str, *, path: str = "/", max_age: int | None = None,
                   secure: bool | None = None, httponly: bool | None = None, samesite: str | None = None) -> None: ...

    def del_cookie(self, name: str, *, path: str = "/") -> None: ...


class CookieJar:
    """The cookies an answer will set, gathered in order while a browser flow runs; setting
    a name again replaces it in place. `set_cookie` has the keyword arguments of the web
    framework's, so a helper can set a cookie on either."""

    __slots__ = ("_cookies",)

    def __init__(self, cookies: tuple[Cookie, ...] = ()) -> None:
        self._cookies: dict[str, Cookie] = {}
        for cookie in cookies:
            self.add(cookie)

    def add(self, cookie: Cookie) -> None:
        if cookie.cleared:  # as the framework's `del_cookie`: the clearing line comes last
            self._cookies.pop(cookie.name, None)
        self._cookies[cookie.name] = cookie

    def set_cookie(self, name: str, value: str, *, path: str = "/", max_age: int | None = None,
                   secure: bool | None = None, httponly: bool | None = None, samesite: str | None = None) -> None:
        self.add(Cookie(name, value, path, max_age, secure, httponly, samesite))

    def del_cookie(self, name: str, *, path: str = "/") -> None:
        self.add(Cookie.clear(name, path))

    def __iter__(self) -> Iterator[Cookie]:
        return iter(self._cookies.values())

    def __bool__(self) -> bool:
        return bool(self._cookies)


@dataclass(frozen=True, slots=True)
class Answer:
    """An endpoint's answer: status, headers (a shared constant mapping), body bytes (None:
    no body at all), cookies to set."""

    status: int = 200
    body: bytes | None = None
    # a shared constant: built once, not per answer (the web layer copies it into its response)
    headers: Mapping[str, str] = field(default_factory=lambda: _NO_HEADERS)
    cookies: tuple[Cookie, ...] = ()

    @classmethod
    def no_store_json(cls, document: Any, status: int = 200) -> Answer:
        """A JSON answer that no cache may keep (RFC 6749 §5.1: token responses and the
        like): compact UTF-8 JSON (orjson: on every token response), `Content-Type:
        application/json; charset=utf-8`."""
        return cls(status, orjson.dumps(document), JSON_NO_STORE)

    @property
    def content_type(self) -> str | None:
        return self.headers.get("Content-Type")

    def with_cookies(self, cookies: CookieJar | tuple[Cookie, ...]) -> Answer:
        """This answer, setting `cookies` too (after its own)."""
        if not cookies:
            return self
        jar = CookieJar(self.cookies)
        for cookie in cookies:
            jar.add(cookie)
        return replace(self, cookies=tuple(jar))

    def with_headers(self, headers: Mapping[str, str]) -> Answer:
        """This answer with `headers` set (replacing any of the same name)."""
        merged = CIMultiDict(self.headers)
        for name, value in headers.items():
            merged[name] = value
        return replace(self, headers=CIMultiDictProxy(merged))

    @classmethod
    def see_other(cls, location: str, cookies: CookieJar | tuple[Cookie, ...] = ()) -> Answer:
        """303 to `location`, kept by no cache (the browser flows' redirects)."""
        return cls(303, None, CIMultiDictProxy(CIMultiDict({"Location": location, "Cache-Control": "no-store"})),
                   tuple(cookies))


class Call:
    """One request as the core sees it: method, headers (case-insensitive), query
    parameters (a multi-valued mapping: a name sent twice is an error the core reports),
    the caller's address (engine.oauth.ratelimit.client_ip) and the body, on demand.

    The web layer subclasses it to read the body from its request; `Call.of` builds one
    from values (direct calls, tests). `route`: the path's parameters (`provider`, and
    `realm` when the realm was named in the path)."""

    __slots__ = ("method", "headers", "ip")

    def __init__(self, method: str, headers: Mapping[str, str], ip: str) -> None:
        self.method = method
        self.headers = headers
        self.ip = ip

    @property
    def query(self) -> MultiMapping[str]:
        return _NO_QUERY

    @property
    def content_type(self) -> str:
        """The media type of the body, lower case, without parameters ('' when absent)."""
        return media_type(self.headers.get("Content-Type"))

    @property
    def cookies(self) -> Mapping[str, str]:
        """The request's cookies (`Cookie` header), name -> value."""
        return parse_cookies(self.headers.get("Cookie", ""))

    @property
    def route(self) -> Mapping[str, str]:
        return _NO_ROUTE

    @property
    def content_length(self) -> int | None:
        value = self.headers.get("Content-Length")
        return int(value) if value is not None and value.isdigit() else None

    async def body(self) -> bytes:
        return b""

    def body_now(self) -> bytes | None:
        """The body if it is all here already (no waiting, no deadline to arm), else None:
        then `await body()`."""
        return None

    @staticmethod
    def of(method: str = "POST", *, form: Mapping[str, str] | None = None, body: bytes = b"",
           headers: Mapping[str, str] | None = None, query: Mapping[str, str] | None = None,
           ip: str = "127.0.0.1") -> Call:
        """A call from values: `form` is sent as an `application/x-www-form-urlencoded` body."""
        all_headers = CIMultiDict(headers or {})
        if form is not None:
            body = urlencode(form).encode()
            all_headers.setdefault("Content-Type", "application/x-www-form-urlencoded")
        return _ValueCall(method, CIMultiDictProxy(all_headers), ip, body, MultiDictProxy(MultiDict(query or {})))


class _ValueCall(Call):
    __slots__ = ("_body", "_query")

    def __init__(self, method: str, headers: Mapping[str, str], ip: str, body: bytes,
                 query: MultiMapping[str]) -> None:
        super().__init__(method, headers, ip)
        self._body = body
        self._query = query

    @property
    def query(self) -> MultiMapping[str]:
        return self._query

    async def body(self) -> bytes:
        return self._body

    def body_now(self) -> bytes | None:
        return self._body


def parse_cookies(header: str) -> Mapping[str, str]:
    """A `Cookie` header as name -> value (an unparsable header: no cookies)."""
    if not header:
        return _NO_COOKIES
    jar: SimpleCookie = SimpleCookie()
    try:
        jar.load(header)
    except CookieError:
        return _NO_COOKIES
    return MappingProxyType({name: morsel.value for name, morsel in jar.items()})


def media_type(content_type: str | None) -> str:
    """`type/subtype` of a Content-Type value, lower case, parameters dropped."""
    if not content_type:
        return ""
    return content_type.partition(";")[0].strip().lower()
