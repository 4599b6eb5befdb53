"""Time, injectable: the app reads time only through a Clock, so tests move it by hand."""

from __future__ import annotations

import time
from datetime import UTC, datetime


class Clock:
    """Wall-clock time in UTC. Tests use `FrozenClock`."""

    def now(self) -> datetime:
        return datetime.now(UTC)

    def timestamp(self) -> int:
        return int(time.time())


class FrozenClock(Clock):
    """A clock that only moves when told to (`advance`)."""

    def __init__(self, start: datetime | None = None):
        self._now = start or datetime.now(UTC).replace(microsecond=0)

    def now(self) -> datetime:
        return self._now

    def timestamp(self) -> int:
        return int(self._now.timestamp())

    def advance(self, seconds: float) -> None:
        from datetime import timedelta

        self._now += timedelta(seconds=seconds)
