"""Reading the audit log (`idp audit`): events of a realm from a point in time, page by
page, as plain JSON-able records. Writing happens in `Services.audit`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

from engine.config.durations import parse_duration
from engine.store.protocols import AuditEvent, DurableStore


def parse_since(value: str, now: datetime) -> datetime:
    """`--since`: an ISO 8601 time (UTC unless it says otherwise) or a duration back from
    now (`90s`, `15m`, `1h`, `2d`, `1w`)."""
    try:
        return now - parse_duration(value)
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(f"--since {value!r}: use an ISO 8601 time or a duration such as 1h") from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


async def read_events(
    durable: DurableStore, realm: str, since: datetime | None, page_size: int = 1000
) -> AsyncIterator[AuditEvent]:
    """Every audit event of the realm from `since`, oldest first, page by page (the store
    pages by time; events sharing the last instant of a page are not repeated)."""
    last: tuple[datetime, int] | None = None
    while True:
        page = await durable.list_events(realm, since=since, limit=page_size)
        fresh = [e for e in page if last is None or (e.at, e.id or 0) > last]
        for event in fresh:
            yield event
        if len(page) < page_size:
            return
        if fresh:
            last = (fresh[-1].at, fresh[-1].id or 0)
            since = fresh[-1].at
        else:  # a full page of one instant: read a bigger one
            page_size *= 2


def record(event: AuditEvent) -> dict[str, Any]:
    return {
        "id": event.id, "at": event.at.isoformat(), "realm": event.realm, "type": event.type,
        "user_id": event.user_id, "client_id": event.client_id, "ip": event.ip, "data": event.data,
    }
