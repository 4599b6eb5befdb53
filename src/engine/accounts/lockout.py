"""Brute-force protection of password sign-in, per account and per client IP (realm
setting `lockout:`; counters in the ephemeral store, so every instance shares them).

For each dimension, after `free_failures` failures within `window` every further attempt
waits `first_delay`, doubling per failure up to `max_delay`; at `max_failures` the account
(or IP) is locked for `lockout_for`, doubled for each further lockout within 24 hours (at
most 24 hours). Lockouts and failures are audit events.

- *Account* = the typed email, normalised and hashed: an unknown address is counted,
  delayed and locked exactly like a known one, so neither the answers nor their timing
  tell who has an account. Attempts are counted *before* the password is checked (a
  success clears the count), so a burst of parallel guesses cannot all slip in before
  the first failure is recorded.
- *IP* counts failures only (signing in to one's own account must not reset it).
- The delay is an `await services.sleep(...)` before the password is checked: it holds
  only this request; the event loop and everybody else's requests go on (tests inject a
  sleeper instead of waiting, see engine.web.app.create_app).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from engine import events
from engine.clock import FrozenClock
from engine.config.models import LockoutPolicy
from engine.realm import Realm
from engine.secrets_util import sha256_hex
from engine.store.batch import WriteBatch

DAY = 86400
Sleep = Callable[[float], Awaitable[None]]


class Locked(Exception):
    def __init__(self, retry_after: int):
        super().__init__(f"locked for {retry_after}s")
        self.retry_after = max(1, int(retry_after))


@dataclass(frozen=True)
class Attempt:
    account: str  # sha256 of the normalised email
    ip: str
    account_attempts: int  # this one included
    delay: float


def default_sleep(clock: Any) -> Sleep:
    """`asyncio.sleep` on the wall clock. A FrozenClock's time moves only when a test says
    so, so sleeping on it returns at once (the delay is still computed and recorded)."""
    if isinstance(clock, FrozenClock):
        async def frozen_sleep(seconds: float) -> None:
            await asyncio.sleep(0)

        return frozen_sleep
    return asyncio.sleep


def account_key(email: str) -> str:
    return sha256_hex(email.strip().lower())


def delay_for(policy: LockoutPolicy, failures: int) -> float:
    """Seconds to wait before checking the next attempt, after `failures` failures."""
    if failures < policy.free_failures:
        return 0.0
    first = policy.first_delay.total_seconds()
    return min(policy.max_delay.total_seconds(), first * 2 ** min(failures - policy.free_failures, 30))


def _keys(realm: Realm, kind: str, subject: str) -> tuple[str, str, str]:
    base = f"{realm.name}:bf:{kind}"
    return f"{base}:count:{subject}", f"{base}:lock:{subject}", f"{base}:lockouts:{subject}"


def _ip_failures_key(realm: Realm, ip: str) -> str:
    """The IP's failure count as last seen, readable (a counter can only be incremented)."""
    return f"{realm.name}:bf:ip:failures:{ip}"


def _seconds(delta: Any) -> int:
    return max(1, int(delta.total_seconds()))


@dataclass(frozen=True)
class Standing:
    """What `check` read: neither the account nor the IP is locked."""

    account: str  # sha256 of the normalised email
    ip: str
    ip_failures: int


async def check(services: Any, realm: Realm, *, email: str, ip: str) -> Standing:
    """Locked if the account or the IP is locked (changes nothing; one round trip)."""
    account = account_key(email)
    values = await services.ephemeral.get_many(_standing_keys(realm, account, ip))
    return _standing(services, account, ip, values)


def _standing_keys(realm: Realm, account: str, ip: str) -> list[str]:
    """The two locks (the guards), then the IP's failure count."""
    return [_keys(realm, "account", account)[1], _keys(realm, "ip", ip)[1], _ip_failures_key(realm, ip)]


def _standing(services: Any, account: str, ip: str, values: list[dict[str, Any] | None]) -> Standing:
    account_lock, ip_lock, ip_state = values
    now = services.clock.timestamp()
    for lock in (account_lock, ip_lock):
        if lock is not None and lock.get("until", 0) > now:
            raise Locked(lock["until"] - now)
    return Standing(account, ip, int(ip_state.get("failures", 0)) if ip_state else 0)


async def begin(services: Any, realm: Realm, *, email: str, ip: str) -> Attempt:
    """Before checking a password: Locked if the account or the IP is locked; else count
    the attempt (in the same round trip as the check), then Locked past the threshold, or
    wait the growing delay and go ahead."""
    policies = realm.config.lockout
    account = account_key(email)
    count_key = _keys(realm, "account", account)[0]
    window = _seconds(policies.account.window)
    values, attempts = await services.ephemeral.get_many_and_incr(
        _standing_keys(realm, account, ip), count_key, window, guards=2)
    standing = _standing(services, account, ip, values)
    if attempts is None:  # a lock was there, but is over by our clock (its TTL is rounded up)
        attempts = await services.ephemeral.incr(count_key, window)
    if attempts > policies.account.max_failures:
        # Parallel attempts past the threshold while the one that reached it is checked.
        raise Locked(_seconds(policies.account.lockout_for))
    delay = max(delay_for(policies.account, attempts - 1), delay_for(policies.ip, standing.ip_failures))
    if delay > 0:
        await services.sleep(delay)
    return Attempt(account=account, ip=ip, account_attempts=attempts, delay=delay)


async def _lock_duration(services: Any, realm: Realm, kind: str, subject: str, policy: LockoutPolicy) -> int:
    """`lockout_for`, doubled for each earlier lockout of `subject` in the last day."""
    _, _, lockouts_key = _keys(realm, kind, subject)
    lockouts = await services.ephemeral.incr(lockouts_key, DAY)
    return min(DAY, _seconds(policy.lockout_for) * 2 ** min(lockouts - 1, 16))


async def failed(services: Any, realm: Realm, attempt: Attempt, *, user_id: str | None,
                 client_id: str | None = None) -> bool:
    """After a wrong password: count it; lock the account and/or IP at the threshold.
    True if this failure locked something."""
    policies = realm.config.lockout
    ephemeral = services.ephemeral
    now = services.clock.timestamp()
    locked = False
    if attempt.account_attempts >= policies.account.max_failures:
        count_key, lock_key, _ = _keys(realm, "account", attempt.account)
        duration = await _lock_duration(services, realm, "account", attempt.account, policies.account)
        await ephemeral.put(lock_key, {"until": now + duration}, duration)
        await ephemeral.delete(count_key)
        locked = True
        await services.audit(realm.name, events.LOCKOUT, user_id=user_id, client_id=client_id, ip=attempt.ip,
                             scope="account", account=attempt.account[:16], failures=attempt.account_attempts,
                             seconds=duration)
    count_key, lock_key, _ = _keys(realm, "ip", attempt.ip)
    ip_failures = await ephemeral.incr(count_key, _seconds(policies.ip.window))
    if ip_failures >= policies.ip.max_failures:
        duration = await _lock_duration(services, realm, "ip", attempt.ip, policies.ip)
        await ephemeral.put(lock_key, {"until": now + duration}, duration)
        await ephemeral.delete(count_key)
        await ephemeral.delete(_ip_failures_key(realm, attempt.ip))
        locked = True
        await services.audit(realm.name, events.LOCKOUT, client_id=client_id, ip=attempt.ip, scope="ip",
                             failures=ip_failures, seconds=duration)
    else:
        await ephemeral.put(_ip_failures_key(realm, attempt.ip), {"failures": ip_failures},
                            _seconds(policies.ip.window))
    return locked


def succeeded(realm: Realm, attempt: Attempt, writes: WriteBatch) -> None:
    """The right password: the account starts again from zero (the IP's count stays) when
    `writes` is committed."""
    count_key, _, _ = _keys(realm, "account", attempt.account)
    writes.delete(count_key)


async def clear_account(services: Any, realm: Realm, email: str) -> None:
    """Lift an account's lockout and its sign-in rate limit (its owner just proved
    control of the mailbox, e.g. by resetting the password)."""
    for key in _keys(realm, "account", account_key(email)):
        await services.ephemeral.delete(key)
    # The current window of engine.oauth.ratelimit's per-account counter (login.py's bucket).
    window = max(1, int(realm.config.rate_limits.login_per_account.per.total_seconds()))
    now = services.clock.timestamp()
    subject = sha256_hex(email.strip().lower())
    await services.ephemeral.delete(f"{realm.name}:rl:login_account:{subject}:{now - now % window}")
