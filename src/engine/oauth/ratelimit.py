"""Rate limits on `/authorize`, `/token` and `/login/*` (seed security musts): fixed-window
counters in the ephemeral store, so every instance counts together; over the limit →
429 with `Retry-After`."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from engine.config.models import RateLimit
from engine.errors import RateLimited
from engine.realm import Realm
from engine.web.appkeys import SERVICES


def client_ip(request: web.Request) -> str:
    """The caller's address; `X-Forwarded-For` only when the operator trusts the proxy."""
    services = request.app[SERVICES]
    if services.runtime.config.server.trust_forwarded_for:
        forwarded = request.headers.get("X-Forwarded-For")
        if forwarded:
            return forwarded.split(",")[0].strip()
    return request.remote or "unknown"


async def hit(services: Any, realm: Realm, bucket: str, subject: str, limit: RateLimit) -> int | None:
    """Count one request; return seconds to wait if over the limit, else None."""
    window = max(1, int(limit.per.total_seconds()))
    now = services.clock.timestamp()
    start = now - now % window
    count = await services.ephemeral.incr(f"{realm.name}:rl:{bucket}:{subject}:{start}", window + 1)
    if count > limit.requests:
        return start + window - now
    return None


async def enforce(services: Any, realm: Realm, bucket: str, subject: str, limit: RateLimit) -> None:
    retry_after = await hit(services, realm, bucket, subject, limit)
    if retry_after is not None:
        raise RateLimited(retry_after)
