"""Outbound HTTP to upstream identity providers: one shared `aiohttp.ClientSession` per
app (opened and closed in a `cleanup_ctx`), and `fetch_json`, which turns every way an
upstream can fail (unreachable, slow, non-2xx, oversized, not JSON) into an
`UpstreamError` the engine renders as a readable page.

The session has no cookie jar: it serves every user of every realm, and an upstream's
cookies must never carry over from one user's login to another's.

Redirects are never followed: a request carrying a client secret, a code or a token must
reach the endpoint that was checked and no other (RFC 6749 §2.3.1 sends the secret to the
token endpoint only; a 307 would replay it elsewhere). A 3xx is an UpstreamError.
`check_endpoint` holds the endpoints an upstream names to HTTPS (plain HTTP only on
loopback, RFC 8252 §8.3) and to origins the operator trusts.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import AsyncIterator, Callable, Iterable
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import aiohttp
from aiohttp import web

from engine.providers import UpstreamError

if TYPE_CHECKING:
    from engine.services import Services

TIMEOUT = aiohttp.ClientTimeout(total=10, connect=5)
MAX_RESPONSE_BYTES = 1 << 20  # discovery documents, JWKS and token responses are tiny
USER_AGENT = "Tessera-IdP"


def http_client(services: Services) -> Callable[[web.Application], AsyncIterator[None]]:
    """A cleanup context that puts the shared client session on `services.http`."""

    async def context(app: web.Application) -> AsyncIterator[None]:
        services.http = aiohttp.ClientSession(
            timeout=TIMEOUT, cookie_jar=aiohttp.DummyCookieJar(), headers={"User-Agent": USER_AGENT}
        )
        try:
            yield
        finally:
            await services.http.close()
            services.http = None

    return context


async def fetch_json(
    session: aiohttp.ClientSession,
    method: str,
    url: str,
    *,
    ok: Iterable[int] = (200,),
    **kwargs: Any,
) -> Any:
    """`method url` and its JSON body; UpstreamError (with `.status` when there was an
    answer) for anything else. Error messages are for logs: they may quote the start of
    an upstream error body, never a request's secrets."""
    what = f"{method} {url.split('?', 1)[0]}"
    kwargs["allow_redirects"] = False  # never: see the module docstring
    try:
        async with session.request(method, url, **kwargs) as response:
            body = await response.content.read(MAX_RESPONSE_BYTES + 1)
            status = response.status
            location = response.headers.get("Location", "")
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise UpstreamError(f"{what}: {type(exc).__name__}: {exc}") from exc
    if len(body) > MAX_RESPONSE_BYTES:
        raise UpstreamError(f"{what}: response larger than {MAX_RESPONSE_BYTES} bytes", status=status)
    if 300 <= status < 400 and status not in tuple(ok):
        raise UpstreamError(f"{what}: HTTP {status} redirect to {location[:200]!r}"
                            " refused (redirects are not followed)", status=status)
    if status not in tuple(ok):
        excerpt = body[:200].decode("utf-8", "replace")
        raise UpstreamError(f"{what}: HTTP {status}: {excerpt!r}", status=status)
    try:
        return json.loads(body)
    except ValueError:
        raise UpstreamError(f"{what}: HTTP {status} but the body is not JSON", status=status) from None


LOOPBACK_NAMES = frozenset({"localhost"})


def is_loopback(host: str) -> bool:
    if host.lower().rstrip(".") in LOOPBACK_NAMES or host.lower().endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def origin_of(url: str) -> str | None:
    """`scheme://host[:port]`, lower-cased, default ports dropped; None if `url` is not an
    absolute http(s) URL."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        return None
    scheme, host = parts.scheme.lower(), parts.hostname.lower()
    if ":" in host:
        host = f"[{host}]"
    default = 443 if scheme == "https" else 80
    return f"{scheme}://{host}" + (f":{port}" if port not in (None, default) else "")


def secure_url_problem(url: str) -> str | None:
    """Why `url` may not be an upstream endpoint (None if it may): HTTPS, or plain HTTP to
    a loopback host (a development upstream on this machine); no user info."""
    try:
        parts = urlsplit(url.strip())
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        return "is not a valid URL"
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        return "is not an absolute http(s) URL"
    if parts.username is not None or parts.password is not None:
        return "must not carry a user name or password"
    if parts.scheme.lower() == "http" and not is_loopback(parts.hostname):
        return "must use https (plain http is allowed only on loopback: 127.0.0.1, ::1, localhost)"
    return None


def check_endpoint(name: str, url: Any, *, issuer: str, allowed_origins: Iterable[str] = ()) -> str:
    """`url` if an upstream's discovery may name it as its `name` endpoint, else
    UpstreamError naming it: HTTPS (or loopback HTTP), and on the issuer's origin or one
    of `allowed_origins` (the provider's `allowed_endpoint_origins` setting). Where the
    client secret and users' tokens go is the operator's decision, not the upstream's."""
    if not isinstance(url, str):
        raise UpstreamError(f"discovery names no usable {name}")
    if (problem := secure_url_problem(url)) is not None:
        raise UpstreamError(f"refused {name} {url[:200]!r}: it {problem}")
    origin = origin_of(url)
    trusted = {origin_of(issuer), *(origin_of(o) for o in allowed_origins)}
    if origin not in trusted:
        raise UpstreamError(
            f"refused {name} {url[:200]!r}: its origin {origin} is neither the issuer's ({origin_of(issuer)}) nor"
            " listed in the provider's allowed_endpoint_origins"
        )
    return url
