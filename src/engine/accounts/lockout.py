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

The lockout must not lock the owner out (issue 16 item 5; OWASP Authentication Cheat
Sheet, "Slow Down Online Guessing Attacks with Device Cookies"):

- *Device cookies.* A successful password sign-in gives the browser a device cookie
  (`tessera_device_<realm>`): an opaque random secret per account signed in from it (up to
  `MAX_DEVICES` accounts per browser), whose SHA-256 names a server-side record that binds
  it to the account (the ephemeral store, `lockout.device_cookie_for`, 90 days by default
  since the last sign-in; renewed with a fresh secret at every sign-in). An attempt that
  presents a device cookie of the account it names is *trusted*: it is not held back by
  the account's lockout, the IP's lockout, or the per-account and per-IP sign-in rate
  limits (which attackers elsewhere can exhaust); instead it has its own small budget
  (`lockout.device`, and `rate_limits.login_per_account` per device) and a lockout of that
  device cookie only. Its failures do not count against the account or the IP.
- *Everything else is untrusted* and counted as above: guesses stay capped.
- *Mail.* When an account gets locked, its owner (if the address has an account) is
  mailed a notice with a password-reset link, after the response and limited per
  recipient (`rate_limits.mail_per_recipient`); a reset lifts the lockout
  (`clear_account`) and the browser that did it becomes trusted.
- *Trust ends with a proof.* When the account's address is proven (the pre-registrant may
  lose the account, engine.accounts.proof) or its password is reset, every device cookie
  issued for it before stops being trusted (`end_trust`: a per-account "trusted since"
  time; each trust record carries its issue time, compared in the same read).
"""

from __future__ import annotations

import asyncio
import hmac
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from engine import events
from engine.accounts.emails import email_identity
from engine.accounts.sessions import secure_cookies
from engine.clock import FrozenClock
from engine.config.models import LockoutPolicy
from engine.realm import Realm
from engine.secrets_util import random_token, sha256_hex
from engine.store.batch import WriteBatch

if TYPE_CHECKING:
    from engine.services import Services

DAY = 86400
MAX_DEVICES = 5  # accounts remembered per browser (the cookie holds one secret for each)
_DEVICE_SEPARATOR = "."  # never in a random_token (URL-safe base64 without padding)
Sleep = Callable[[float], Awaitable[None]]


class Locked(Exception):
    def __init__(self, retry_after: int):
        super().__init__(f"locked for {retry_after}s")
        self.retry_after = max(1, int(retry_after))


@dataclass(frozen=True)
class Attempt:
    account: str  # sha256 of the normalised email
    ip: str
    account_attempts: int  # this one included (for a trusted attempt: the device's count)
    delay: float
    device: str | None = None  # the trusted device cookie's id (sha256 of its secret), if any


def default_sleep(clock: Any) -> Sleep:
    """`asyncio.sleep` on the wall clock. A FrozenClock's time moves only when a test says
    so, so sleeping on it returns at once (the delay is still computed and recorded)."""
    if isinstance(clock, FrozenClock):
        async def frozen_sleep(seconds: float) -> None:
            await asyncio.sleep(0)

        return frozen_sleep
    return asyncio.sleep


def account_key(email: str) -> str:
    """The account's counting key: the address normalised (engine.accounts.emails: NFKC,
    IDNA, lower case) and hashed, so `\u212aate@…` and `KATE@…` are counted as `kate@…`."""
    return sha256_hex(email_identity(email))


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


async def check(services: Services, realm: Realm, *, email: str, ip: str, device: str | None = None,
                account: str | None = None) -> Standing:
    """Locked if the account or the IP is locked, or for a trusted attempt, its device
    cookie (changes nothing; one round trip). `account`: a counting key to use instead of
    the email's (a user's second factor, engine.accounts.mfa_pages)."""
    account = account or account_key(email)
    if device is not None:
        lock = (await services.ephemeral.get_many([_keys(realm, "device", device)[1]]))[0]
        _raise_if_locked(services, lock)
        return Standing(account, ip, 0)
    values = await services.ephemeral.get_many(_standing_keys(realm, account, ip))
    return _standing(services, account, ip, values)


def _standing_keys(realm: Realm, account: str, ip: str) -> list[str]:
    """The two locks (the guards), then the IP's failure count."""
    return [_keys(realm, "account", account)[1], _keys(realm, "ip", ip)[1], _ip_failures_key(realm, ip)]


def _standing(services: Services, account: str, ip: str, values: list[dict[str, Any] | None]) -> Standing:
    account_lock, ip_lock, ip_state = values
    for lock in (account_lock, ip_lock):
        _raise_if_locked(services, lock)
    return Standing(account, ip, int(ip_state.get("failures", 0)) if ip_state else 0)


def _raise_if_locked(services: Services, lock: dict[str, Any] | None) -> None:
    now = services.clock.timestamp()
    if lock is not None and lock.get("until", 0) > now:
        raise Locked(lock["until"] - now)


async def begin(services: Services, realm: Realm, *, email: str, ip: str, device: str | None = None,
                account: str | None = None) -> Attempt:
    """Before checking a password: Locked if the account or the IP is locked; else count
    the attempt (in the same round trip as the check), then Locked past the threshold, or
    wait the growing delay and go ahead. A trusted attempt (`device`, from
    `trusted_device`) is checked and counted against its device cookie only. `account`: a
    counting key to use instead of the email's (second-factor codes are counted per user
    this way, engine.accounts.mfa_pages, with the same policy and the same IP counts)."""
    policies = realm.config.lockout
    account = account or account_key(email)
    if device is not None:
        return await _begin_trusted(services, realm, account, ip, device)
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


async def _begin_trusted(services: Services, realm: Realm, account: str, ip: str, device: str) -> Attempt:
    policy = realm.config.lockout.device
    count_key, lock_key, _ = _keys(realm, "device", device)
    window = _seconds(policy.window)
    values, attempts = await services.ephemeral.get_many_and_incr([lock_key], count_key, window, guards=1)
    _raise_if_locked(services, values[0])
    if attempts is None:  # a lock was there, but is over by our clock
        attempts = await services.ephemeral.incr(count_key, window)
    if attempts > policy.max_failures:
        raise Locked(_seconds(policy.lockout_for))
    delay = delay_for(policy, attempts - 1)
    if delay > 0:
        await services.sleep(delay)
    return Attempt(account=account, ip=ip, account_attempts=attempts, delay=delay, device=device)


async def _lock_duration(services: Services, realm: Realm, kind: str, subject: str, policy: LockoutPolicy) -> int:
    """`lockout_for`, doubled for each earlier lockout of `subject` in the last day."""
    _, _, lockouts_key = _keys(realm, kind, subject)
    lockouts = await services.ephemeral.incr(lockouts_key, DAY)
    return min(DAY, _seconds(policy.lockout_for) * 2 ** min(lockouts - 1, 16))


async def failed(services: Services, realm: Realm, attempt: Attempt, *, user_id: str | None,
                 client_id: str | None = None) -> frozenset[str]:
    """After a wrong password: count it; lock the account and/or IP (for a trusted
    attempt: its device cookie only) at the threshold. What this failure locked:
    some of "account", "ip", "device"."""
    policies = realm.config.lockout
    ephemeral = services.ephemeral
    now = services.clock.timestamp()
    if attempt.device is not None:
        if attempt.account_attempts < policies.device.max_failures:
            return frozenset()
        count_key, lock_key, _ = _keys(realm, "device", attempt.device)
        duration = await _lock_duration(services, realm, "device", attempt.device, policies.device)
        await ephemeral.put(lock_key, {"until": now + duration}, duration)
        await ephemeral.delete(count_key)
        await services.audit(realm.name, events.LOCKOUT, user_id=user_id, client_id=client_id, ip=attempt.ip,
                             scope="device", device=attempt.device[:16], failures=attempt.account_attempts,
                             seconds=duration)
        return frozenset({"device"})
    locked: set[str] = set()
    if attempt.account_attempts >= policies.account.max_failures:
        count_key, lock_key, _ = _keys(realm, "account", attempt.account)
        duration = await _lock_duration(services, realm, "account", attempt.account, policies.account)
        await ephemeral.put(lock_key, {"until": now + duration}, duration)
        await ephemeral.delete(count_key)
        locked.add("account")
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
        locked.add("ip")
        await services.audit(realm.name, events.LOCKOUT, client_id=client_id, ip=attempt.ip, scope="ip",
                             failures=ip_failures, seconds=duration)
    else:
        await ephemeral.put(_ip_failures_key(realm, attempt.ip), {"failures": ip_failures},
                            _seconds(policies.ip.window))
    return frozenset(locked)


def succeeded(realm: Realm, attempt: Attempt, writes: WriteBatch) -> None:
    """The right password: the account (for a trusted attempt: its device cookie) starts
    again from zero (the IP's count stays) when `writes` is committed."""
    if attempt.device is not None:
        writes.delete(_keys(realm, "device", attempt.device)[0])
    else:
        writes.delete(_keys(realm, "account", attempt.account)[0])


async def clear_account(services: Services, realm: Realm, email: str) -> None:
    """Lift an account's lockout and its sign-in rate limit (its owner just proved
    control of the mailbox, e.g. by resetting the password)."""
    for key in _keys(realm, "account", account_key(email)):
        await services.ephemeral.delete(key)
    # The current window of engine.oauth.ratelimit's per-account counter (login.py's bucket).
    window = max(1, int(realm.config.rate_limits.login_per_account.per.total_seconds()))
    now = services.clock.timestamp()
    subject = account_key(email)
    await services.ephemeral.delete(f"{realm.name}:rl:login_account:{subject}:{now - now % window}")


# Device cookies (OWASP "device cookies"; see the module docstring).


def device_cookie_name(realm: Realm) -> str:
    return f"tessera_device_{realm.name}"


def _device_secrets(cookie: str | None) -> list[str]:
    """The secrets a device cookie holds, newest first (malformed entries dropped)."""
    entries = (cookie or "").split(_DEVICE_SEPARATOR)[:MAX_DEVICES]
    return [e for e in entries if 32 <= len(e) <= 64 and e.replace("-", "").replace("_", "").isalnum()]


def _trust_key(realm: Realm, device: str) -> str:
    return f"{realm.name}:bf:device:trust:{device}"


def _trust_since_key(realm: Realm, account: str) -> str:
    """`{"from": t}`: device cookies of the account issued before `t` are no longer trusted."""
    return f"{realm.name}:bf:device:since:{account}"


async def end_trust(services: Services, realm: Realm, email: str) -> None:
    """Every device cookie issued for `email`'s account so far stops being trusted (its
    address was just proven, or its password reset: whoever signed in before may not be
    its owner). A browser trusted at the very same instant (the reset's own) stays trusted."""
    lifetime = _seconds(realm.config.lockout.device_cookie_for) + DAY  # outlives every trust record
    await services.ephemeral.put(_trust_since_key(realm, account_key(email)),
                                 {"from": services.clock.now().timestamp()}, lifetime)


async def trusted_device(services: Services, realm: Realm, cookie: str | None, email: str) -> str | None:
    """The id of the device cookie in `cookie` that was issued at a sign-in to `email`'s
    account and is still trusted; None if there is none (no store read without a cookie)."""
    secrets = _device_secrets(cookie)
    if not secrets:
        return None
    account = account_key(email)
    devices = [sha256_hex(secret) for secret in secrets]
    # The account's "trusted since" is read in the same round trip as the records.
    *records, since = await services.ephemeral.get_many(
        [_trust_key(realm, device) for device in devices] + [_trust_since_key(realm, account)])
    trusted_from = float(since.get("from", 0)) if since else None
    for device, record in zip(devices, records, strict=True):
        if record is None or not hmac.compare_digest(str(record.get("account", "")), account):
            continue
        if trusted_from is not None and float(record.get("at", 0)) < trusted_from:
            continue  # issued before the address was proven or the password reset
        return device
    return None


def trust_browser(services: Services, realm: Realm, cookie: str | None, email: str, writes: WriteBatch, *,
                  replaces: str | None = None) -> str:
    """After a proof of the account (the right password, a reset link): a new device
    secret bound to `email`'s account, stored when `writes` is committed; the cookie's new
    value (the secret first, then up to MAX_DEVICES - 1 of the others) is returned.
    `replaces` (the device id used for this sign-in) is retired: one secret per sign-in."""
    secret = random_token(32)
    lifetime = _seconds(realm.config.lockout.device_cookie_for)
    writes.put(_trust_key(realm, sha256_hex(secret)),
               {"account": account_key(email), "at": services.clock.now().timestamp()}, lifetime)
    others = []
    for old in _device_secrets(cookie):
        if sha256_hex(old) == replaces:
            writes.delete(_trust_key(realm, replaces))
        else:
            others.append(old)
    return _DEVICE_SEPARATOR.join([secret, *others][:MAX_DEVICES])


def set_device_cookie(response: Any, services: Services, realm: Realm, value: str) -> None:
    response.set_cookie(device_cookie_name(realm), value, max_age=_seconds(realm.config.lockout.device_cookie_for),
                        path="/", httponly=True, samesite="Lax", secure=secure_cookies(services))


async def trust_after_proof(cookies: Any, response: Any, services: Services, realm: Realm, email: str) -> None:
    """The browser that just proved the account some other way (a password-reset link)
    becomes trusted for it too: a sign-in right after is never held back by a lockout
    someone elsewhere keeps up. `cookies`: the request's."""
    writes = WriteBatch(services.ephemeral)
    value = trust_browser(services, realm, cookies.get(device_cookie_name(realm)), email, writes)
    await writes.commit()
    set_device_cookie(response, services, realm, value)
