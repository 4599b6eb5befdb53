"""Rate limits on `/authorize`, `/token`, `/login/*` (seed security musts) and wherever a
secret is tried (client authentication, introspection, revocation, userinfo): fixed-window
counters in the ephemeral store, so every instance counts together; over the limit →
429 with `Retry-After`. Also where the caller's address comes from (`client_ip`).

A Redis round trip on every `/token` request costs more CPU than everything else but the
signature, so each instance counts *locally* while a window is far from its limit and
adds its count to the shared counter in batches (`INCRBY`), in the background, within
`SYNC_INTERVAL` seconds or after `batch` requests. One background sync carries every
counter with counts to share (`incr_many`: one round trip for the windows of every bucket,
per IP and per account, together, not one each). Close to the limit (and for small
limits, and for the first request of a window) every request is counted in the store
before it is answered, exactly as without batching. The cost: each instance may admit up
to `batch` requests (at most 1/16 of the limit, at most `MAX_BATCH`) beyond the limit
before it has seen the other instances' counts. A failed background sync makes the next
request count synchronously, so a store outage is noticed, not hidden.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from engine.config.models import RateLimit, ServerConfig
from engine.errors import RateLimited
from engine.realm import Realm

if TYPE_CHECKING:
    from engine.services import Services

log = logging.getLogger(__name__)

SYNC_INTERVAL = 0.1  # seconds: the longest a local count stays unshared
MAX_BATCH = 64


def client_ip(server: ServerConfig, remote: str | None = None, forwarded_for: Iterable[str] = ()) -> str:
    """The caller's address, for rate limits, lockouts and audit rows, from the peer's
    address (`remote`) and the request's `X-Forwarded-For` lines: the peer, or, when the
    peer is one of the operator's `trusted_proxies`, the nearest untrusted hop of
    `X-Forwarded-For` (every header line, as one comma-separated list: `caller_address`)."""
    networks = server.proxy_networks
    if not networks:
        return _normalised(remote) or "unknown"
    return caller_address(networks, forwarded_for, remote)


def caller_address(networks: tuple[Network, ...], forwarded_for: Iterable[str], remote: str | None) -> str:
    """`client_ip` from the trusted proxy networks, the `X-Forwarded-For` lines and the peer.

    The list is read from the right: each proxy appends the address it received the request
    from, so only the entries appended by trusted proxies can be believed, and the first
    entry that is not a trusted proxy is the client. Everything left of it was written by
    the client (or by proxies nobody vouches for). A value that is not an IP address
    (`unknown`, a host name, junk) stops the walk: the hop to its right, the last one a
    trusted proxy vouched for, is taken as the caller, so junk can neither pick an address
    nor reach a counter key or an audit row. The answer is always a normalised address
    (compressed; IPv4-mapped IPv6 as IPv4), or `unknown` for a peer without one."""
    peer = _normalised(remote)
    if peer is None:
        return "unknown"
    if not _trusted(ipaddress.ip_address(peer), networks):
        return peer
    caller = peer
    for line in reversed(list(forwarded_for)):
        for hop in reversed(line.split(",")):
            address = _address(hop)
            if address is None:
                return caller
            caller = str(address)
            if not _trusted(address, networks):
                return caller
    return caller  # every hop a trusted proxy: the leftmost is the closest we know


Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address
MAX_HOP = 64  # longer than any address with a port; longer values are junk, not parsed


def _trusted(address: Address, networks: tuple[Network, ...]) -> bool:
    return any(address in network for network in networks)


@lru_cache(maxsize=4096)
def _address(value: str) -> Address | None:
    """The IP address of one `X-Forwarded-For` entry (`1.2.3.4`, `1.2.3.4:5678`, `2001:db8::1`,
    `[2001:db8::1]:443`), IPv4-mapped IPv6 as IPv4; None if it is not one."""
    value = value.strip()
    if not value or len(value) > MAX_HOP:
        return None
    if value.startswith("["):  # [v6]:port
        value = value[1:].partition("]")[0]
    elif value.count(":") == 1:  # v4:port
        value = value.partition(":")[0]
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


@lru_cache(maxsize=4096)
def _normalised(remote: str | None) -> str | None:
    """The peer's address as `client_ip` answers it (a dual-stack socket reports IPv4
    peers as `::ffff:a.b.c.d`)."""
    if not remote:
        return None
    address = _address(remote)
    return str(address) if address is not None else None


def batch_size(limit: RateLimit) -> int:
    """How many requests one instance may count locally before sharing (1 = every one)."""
    return max(1, min(MAX_BATCH, limit.requests // 16))


@dataclass
class _Window:
    """This instance's view of one shared counter (one key, one window)."""

    ends: int  # epoch second the window closes
    seconds: int  # its length (the counter's TTL is one more)
    shared: int = 0  # the counter's value in the store at the last sync (every instance)
    pending: int = 0  # counted here, not yet in the store
    inflight: int = 0  # counted here, on its way to the store in a background sync
    synced_at: float = 0.0  # monotonic time of the last successful sync
    failed: bool = False  # the last background sync failed: count synchronously
    bucket: str = ""  # what it counts (`token`, `client_auth_ip`, ...): see LocalCounters.live


class LocalCounters:
    def __init__(self, ephemeral: Any):
        self.ephemeral = ephemeral
        self.windows: dict[str, _Window] = {}
        # bucket -> how many of `windows` count it: a budget with no window here is not
        # spent, known without building its key (failure budgets are looked at on every
        # client authentication and counted only when one fails).
        self.live: dict[str, int] = {}
        self.tasks: set[asyncio.Task[None]] = set()
        self._swept_at = 0
        self._due: dict[str, _Window] = {}  # windows with local counts to share
        self._timer: asyncio.TimerHandle | None = None
        self._syncing = False  # one background sync at a time
        self._urgent = False  # a window reached its batch while a sync was under way

    async def hit(self, key: str, limit: RateLimit, window: int, start: int, now: int, bucket: str = "") -> int:
        """Count one request; return the (estimated) count, including it."""
        count = self.count_locally(key, limit, window, start, now, bucket)
        return await self.count_exactly(key, window) if count is None else count

    def count_locally(self, key: str, limit: RateLimit, window: int, start: int, now: int,
                      bucket: str = "") -> int | None:
        """`hit` without a store round trip when the window is far from its limit: the
        estimated count, including this request; None: count it with `count_exactly`."""
        entry = self.windows.get(key)
        if entry is None:
            if now >= self._swept_at + 1:
                self._sweep(now)
            entry = self.windows[key] = _Window(ends=start + window, seconds=window, bucket=bucket)
            self.live[bucket] = self.live.get(bucket, 0) + 1
        batch = batch_size(limit)
        estimate = entry.shared + entry.inflight + entry.pending + 1
        if batch == 1 or entry.failed or entry.synced_at == 0.0 or estimate + batch > limit.requests:
            return None
        entry.pending += 1
        self._due[key] = entry
        self._schedule(urgent=entry.pending >= batch)
        return estimate

    async def count_exactly(self, key: str, window: int) -> int:
        """Count one request (of a window `count_locally` made) in the store, with whatever is
        pending, before the answer; the count, including it."""
        entry = self.windows[key]
        amount, entry.pending = entry.pending + 1, 0
        try:
            count = await self._incr(key, window, amount)
        except BaseException:
            entry.pending += amount - 1  # the others stay pending; this one was refused
            raise
        entry.shared, entry.failed, entry.synced_at = max(entry.shared, count), False, time.monotonic()
        # The store has everything sent to it (concurrent exact counts included); add
        # what is still local or on its way in a background sync (if that sync already
        # landed, it is counted twice for a moment: strict by at most one batch).
        return count + entry.inflight + entry.pending

    async def _incr(self, key: str, window: int, amount: int) -> int:
        if amount == 1:
            return await self.ephemeral.incr(key, window + 1)
        return await self.ephemeral.incr(key, window + 1, amount=amount)

    def _schedule(self, *, urgent: bool) -> None:
        """A background sync of every due window: now if `urgent`, else within SYNC_INTERVAL."""
        if self._syncing:
            self._urgent = self._urgent or urgent  # the next one starts when this one is done
            return
        if urgent:
            if self._timer is not None:
                self._timer.cancel()
            self._sync_due()
        elif self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(SYNC_INTERVAL, self._sync_due)

    def _sync_due(self) -> None:
        self._timer = None
        due, self._due = self._due, {}
        batch = [(key, entry, entry.pending) for key, entry in due.items() if entry.pending]
        if not batch:
            return
        for _, entry, amount in batch:
            entry.pending, entry.inflight = 0, entry.inflight + amount
        self._syncing, self._urgent = True, False
        task = asyncio.get_running_loop().create_task(self._sync(batch))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _sync(self, batch: list[tuple[str, _Window, int]]) -> None:
        try:
            counts = await self.ephemeral.incr_many([(key, entry.seconds + 1, amount) for key, entry, amount in batch])
        except Exception as exc:  # noted; the next request of these windows counts synchronously
            for _, entry, amount in batch:
                entry.inflight -= amount
                entry.pending += amount
                entry.failed = True
            log.warning("rate-limit counter sync failed: %s", exc)
        else:
            synced_at = time.monotonic()
            for (_, entry, amount), count in zip(batch, counts, strict=True):
                entry.inflight -= amount
                entry.shared, entry.synced_at = max(entry.shared, count), synced_at
        finally:
            self._syncing = False
            if self._due:
                self._schedule(urgent=self._urgent)

    async def flush(self) -> None:
        """Share every local count now, and wait until it is shared."""
        while self._due or self.tasks:
            if self._due and not self._syncing:
                if self._timer is not None:
                    self._timer.cancel()
                self._sync_due()
            if self.tasks:
                await asyncio.gather(*list(self.tasks))

    def _sweep(self, now: int) -> None:
        """Forget windows that are over (their unshared counts no longer matter)."""
        self._swept_at = now
        for key in [k for k, w in self.windows.items() if w.ends <= now and not w.inflight]:
            bucket = self.windows.pop(key).bucket
            if self.live[bucket] == 1:
                del self.live[bucket]
            else:
                self.live[bucket] -= 1


async def share_counts(services: Services) -> None:
    """Before the ephemeral store closes: what this instance counted locally reaches the
    shared counters (another instance keeps counting with it), and no sync is left
    pending. A store that does not answer costs at most its deadline; nothing is raised."""
    if services.rate_counters is not None:
        await services.rate_counters.flush()


def _counters(services: Services) -> LocalCounters:
    counters = services.rate_counters
    if counters is None or counters.ephemeral is not services.ephemeral:
        counters = services.rate_counters = LocalCounters(services.ephemeral)
    return counters


@lru_cache(maxsize=4096)
def _ipv6_network(subject: str) -> str:
    try:
        address = ipaddress.IPv6Address(subject)
    except ValueError:
        return subject
    return str(ipaddress.IPv6Network((address, 64), strict=False))


def rate_subject(subject: str) -> str:
    """What a per-address budget is keyed on: an IPv6 address counts as its /64, the
    smallest network a subscriber is given (RFC 6177), so that rotating through one's own
    prefix buys no fresh budget; IPv4 addresses and every other subject (client ids,
    accounts) as they are."""
    return _ipv6_network(subject) if ":" in subject else subject


async def hit(services: Services, realm: Realm, bucket: str, subject: str, limit: RateLimit) -> int | None:
    """Count one request; return seconds to wait if over the limit, else None."""
    window = max(1, int(limit.per.total_seconds()))
    now = services.clock.timestamp()
    start = now - now % window
    key = f"{realm.name}:rl:{bucket}:{rate_subject(subject)}:{start}"
    counters = _counters(services)
    count = counters.count_locally(key, limit, window, start, now, bucket)
    if count is None:
        count = await counters.count_exactly(key, window)
    if count > limit.requests:
        return start + window - now
    return None


def over_limit(services: Services, realm: Realm, bucket: str, subject: str, limit: RateLimit) -> int | None:
    """Seconds to wait if this instance already knows the budget of the window is spent, without a
    store round trip and without counting (for failure budgets, checked before each attempt
    and counted with `hit` only when it fails). An instance that has not counted in this
    window says None; its first failure there reads the shared count."""
    counters = services.rate_counters
    if counters is None or bucket not in counters.live:
        return None
    window = max(1, int(limit.per.total_seconds()))
    now = services.clock.timestamp()
    start = now - now % window
    entry = counters.windows.get(f"{realm.name}:rl:{bucket}:{rate_subject(subject)}:{start}")
    if entry is None or entry.shared + entry.inflight + entry.pending < limit.requests:
        return None  # the budget is not spent: `limit.requests` failures are allowed
    return start + window - now


@lru_cache(maxsize=64)
def escalated(limit: RateLimit) -> tuple[RateLimit, RateLimit]:
    """A failure budget and its long form (ten times the requests over sixty windows): a
    refusal that lasts one window at first and the rest of the long window for steady abuse."""
    return limit, RateLimit(requests=limit.requests * 10, per=limit.per * 60)


async def enforce(services: Services, realm: Realm, bucket: str, subject: str, limit: RateLimit) -> None:
    retry_after = await hit(services, realm, bucket, subject, limit)
    if retry_after is not None:
        raise RateLimited(retry_after)
