"""Outbound HTTP to upstream identity providers: one shared `aiohttp.ClientSession` per
app (opened and closed in a `cleanup_ctx`), and `fetch_json`, which turns every way an
upstream can fail (unreachable, slow, non-2xx, oversized, not JSON) into an
`UpstreamError` the engine renders as a readable page.

The session has no cookie jar: it serves every user of every realm, and an upstream's
cookies must never carry over from one user's login to another's.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Iterable
from typing import Any

import aiohttp
from aiohttp import web

from engine.providers import UpstreamError

TIMEOUT = aiohttp.ClientTimeout(total=10, connect=5)
MAX_RESPONSE_BYTES = 1 << 20  # discovery documents, JWKS and token responses are tiny
USER_AGENT = "Tessera-IdP"


def http_client(services: Any) -> Callable[[web.Application], AsyncIterator[None]]:
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
    try:
        async with session.request(method, url, **kwargs) as response:
            body = await response.content.read(MAX_RESPONSE_BYTES + 1)
            status = response.status
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise UpstreamError(f"{what}: {type(exc).__name__}: {exc}") from exc
    if len(body) > MAX_RESPONSE_BYTES:
        raise UpstreamError(f"{what}: response larger than {MAX_RESPONSE_BYTES} bytes", status=status)
    if status not in tuple(ok):
        excerpt = body[:200].decode("utf-8", "replace")
        raise UpstreamError(f"{what}: HTTP {status}: {excerpt!r}", status=status)
    try:
        return json.loads(body)
    except ValueError:
        raise UpstreamError(f"{what}: HTTP {status} but the body is not JSON", status=status) from None
