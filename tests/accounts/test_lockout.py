"""Brute-force protection (issue 5, rule 6): per account and per client IP, growing
delays, then a temporary lockout after N failures (realm setting `lockout:`); counters in
the ephemeral store (shared by instances); lockouts and failures are audit events;
unknown accounts cost the same as known ones; delays never block other users.

Delays are checked through the app's injected sleeper and the FrozenClock, never by
waiting: `idp.sleeps.delays` lists every delay the app asked for."""

from __future__ import annotations

import asyncio
import dataclasses

from engine.accounts.lockout import delay_for
from engine.config.models import LockoutPolicy
from tests.accounts.conftest import PASSWORD, RecordedSleeps, build_idp, link_in, mail_yaml, text_of
from tests.accounts.helpers import forgot, reset, verify
from tests.accounts.test_proof import PERMISSIVE_ACME, VICTIM, pre_registered
from tests.oauth.flow import authorize, exchange, login_for_code, submit_login

DEFAULT_DELAYS = [0.0] * 5 + [1.0, 2.0, 4.0] + [5.0] * 12  # failures 0..19 before each attempt


def forget_devices(idp) -> None:
    """The browser forgets its device cookies (another browser, as far as trust goes)."""
    idp.client.session.cookie_jar.clear(lambda cookie: cookie.key.startswith("tessera_device_"))


async def attempts(idp, email: str, password: str, count: int) -> list[int]:
    resp, _ = await authorize(idp, prompt="login")
    location = resp.headers["Location"]
    return [(await submit_login(idp, location, email, password)).status for _ in range(count)]


def test_delay_schedule_grows_then_caps():
    """Rule 6: free failures, then first_delay doubling per failure up to max_delay."""
    policy = LockoutPolicy()
    assert [delay_for(policy, f) for f in range(20)] == DEFAULT_DELAYS
    custom = LockoutPolicy(free_failures=0, first_delay=2, max_delay=60)
    assert [delay_for(custom, f) for f in range(7)] == [2, 4, 8, 16, 32, 60, 60]


async def test_twenty_wrong_passwords_lock_the_account(idp):
    """Rule 6 with the defaults: 20 failures, each after a growing delay, then the
    account is locked (429 + Retry-After) even for the right password."""
    await idp.add_user(password=PASSWORD)
    statuses = await attempts(idp, "alice@example.com", "wrong password here", 20)
    assert statuses == [400] * 20
    assert idp.sleeps.delays == [d for d in DEFAULT_DELAYS if d > 0]
    resp, _ = await authorize(idp)
    locked = await submit_login(idp, resp.headers["Location"], "alice@example.com", PASSWORD)
    assert locked.status == 429 and 800 <= int(locked.headers["Retry-After"]) <= 900
    html = await locked.text()
    assert "Too many failed sign-in attempts" in html and "/forgot-password?flow=" in html
    events = await idp.services.durable.list_events("acme")
    failures = [e for e in events if e.type == "login_failed"]
    lockouts = [e for e in events if e.type == "lockout"]
    assert len(failures) == 21 and failures[0].user_id is not None and failures[-1].data["reason"] == "locked"
    assert len(lockouts) == 1 and lockouts[0].data["scope"] == "account" and lockouts[0].user_id


async def test_lockout_ends_after_lockout_for_and_doubles_next_time(idp):
    """Rule 6: temporary: after `lockout_for` (15 min) the right password works again; a
    second lockout the same day lasts twice as long."""
    await idp.add_user(password=PASSWORD)
    await attempts(idp, "alice@example.com", "wrong password here", 20)
    idp.clock.advance(15 * 60)
    code, _verifier, _ = await login_for_code(idp, "alice@example.com", PASSWORD, prompt="login")
    assert code
    # (Split across two of the plain rate limit's 15-minute windows, which allow 20 requests each.)
    await attempts(idp, "alice@example.com", "wrong password here", 10)
    idp.clock.advance(15 * 60)
    await attempts(idp, "alice@example.com", "wrong password here", 10)
    resp, _ = await authorize(idp, prompt="login")
    locked = await submit_login(idp, resp.headers["Location"], "alice@example.com", PASSWORD)
    assert locked.status == 429 and int(locked.headers["Retry-After"]) == 30 * 60


async def test_unknown_accounts_are_delayed_and_locked_exactly_like_known_ones(idp):
    """Rule 6: the same statuses, delays and lockout for an address without an account."""
    await idp.add_user(password=PASSWORD)
    known = await attempts(idp, "alice@example.com", "wrong password here", 21)
    known_delays, idp.sleeps.delays = idp.sleeps.delays, []
    # The IP counter moved on with the first address; give the second one a fresh IP budget.
    for key in ("count", "lock", "failures"):
        await idp.services.ephemeral.delete(f"acme:bf:ip:{key}:127.0.0.1")
    unknown = await attempts(idp, "nobody@example.com", "wrong password here", 21)
    assert known == unknown == [400] * 20 + [429]
    assert known_delays == idp.sleeps.delays


async def test_a_successful_sign_in_resets_the_account_count(idp):
    """Rule 6: failures are consecutive: the right password starts the count again."""
    await idp.add_user(password=PASSWORD)
    await attempts(idp, "alice@example.com", "wrong password here", 10)
    await login_for_code(idp, "alice@example.com", PASSWORD, prompt="login")
    idp.clock.advance(15 * 60)  # a fresh window of the plain per-account rate limit
    forget_devices(idp)  # counted as an untrusted browser again (this one is trusted now)
    assert await attempts(idp, "alice@example.com", "wrong password here", 19) == [400] * 19
    assert not [e for e in await idp.services.durable.list_events("acme") if e.type == "lockout"]


async def test_per_ip_failures_across_accounts_lock_the_ip(idp):
    """Rule 6: one IP guessing many accounts: delays from its `free_failures` (10 here),
    locked at its `max_failures` (30 here), while each account stays under its own limit."""
    statuses = []
    resp, _ = await authorize(idp)
    location = resp.headers["Location"]
    for i in range(31):
        statuses.append((await submit_login(idp, location, f"user{i % 10}@example.com", "wrong password")).status)
    assert statuses == [400] * 30 + [429]
    lockouts = [e for e in await idp.services.durable.list_events("acme") if e.type == "lockout"]
    assert [e.data["scope"] for e in lockouts] == ["ip"] and lockouts[0].ip == "127.0.0.1"
    assert max(idp.sleeps.delays) == 5.0


async def test_a_password_reset_lifts_the_account_lockout(idp):
    """Rule 6 + 3: proving control of the mailbox ends the lockout."""
    await idp.add_user(password=PASSWORD)
    await attempts(idp, "alice@example.com", "wrong password here", 20)
    await forgot(idp, "alice@example.com")
    await reset(idp, link_in(await idp.last_mail(), "/reset-password"), "a brand new passphrase")
    idp.clock.advance(1)
    code, _verifier, _ = await login_for_code(idp, "alice@example.com", "a brand new passphrase")
    assert code


async def test_parallel_guesses_cannot_outrun_the_count(idp):
    """Rule 6: attempts are counted before the password is checked, so a burst of 40
    simultaneous guesses gets at most `max_failures` (20) password checks."""
    await idp.add_user(password=PASSWORD)
    provider = idp.realm().providers["password"]
    checked = 0
    original = provider.login

    async def counting_login(email, password):
        nonlocal checked
        checked += 1
        return await original(email, password)

    provider.login = counting_login
    resp, _ = await authorize(idp)
    location = resp.headers["Location"]
    page = await (await idp.client.get(location)).text()
    from tests.oauth.flow import form_fields

    fields = form_fields(page)
    posts = [idp.client.post("/login/password", data={**fields, "email": "alice@example.com",
                                                      "password": f"guess {i}"}, allow_redirects=False)
             for i in range(40)]
    statuses = [r.status for r in await asyncio.gather(*posts)]
    assert checked == 20 and statuses.count(400) == 20 and statuses.count(429) == 20


async def test_delays_do_not_block_other_users(tmp_path, backend, aiohttp_client, unused_tcp_port_factory):
    """Rule 6: a delayed attacker's request waits on its own; meanwhile another user signs
    in, redeems a code and refreshes. The delay is an awaited sleep, not a blocked loop."""
    gate = asyncio.Event()
    waiting = asyncio.Event()

    class GatedSleeps(RecordedSleeps):
        async def __call__(self, seconds: float) -> None:
            self.delays.append(seconds)
            waiting.set()
            await gate.wait()

    idp = await build_idp(tmp_path, backend, aiohttp_client, unused_tcp_port_factory(),
                          mail=mail_yaml(tmp_path / "outbox"), outbox=tmp_path / "outbox", sleeps=GatedSleeps())
    await idp.add_user("alice@example.com", PASSWORD)
    await idp.add_user("bob@example.com", "bob's own long passphrase")
    # Five free failures for alice, then the sixth attempt is delayed (held by the gate).
    attacker = dataclasses.replace(idp, client=await aiohttp_client(idp.client.server))
    resp, _ = await authorize(attacker)
    location = resp.headers["Location"]
    for _ in range(5):
        await submit_login(attacker, location, "alice@example.com", "wrong password")
    delayed = asyncio.ensure_future(submit_login(attacker, location, "alice@example.com", "wrong password"))
    await asyncio.wait_for(waiting.wait(), 5)
    assert not delayed.done()
    # Bob signs in, gets tokens and refreshes while alice's attacker is held.
    code, verifier, _ = await asyncio.wait_for(login_for_code(idp, "bob@example.com", "bob's own long passphrase"), 10)
    tokens = await (await exchange(idp, code, verifier)).json()
    refreshed = await idp.client.post("/token", data={"grant_type": "refresh_token", "client_id": "spa",
                                                      "refresh_token": tokens["refresh_token"]})
    assert refreshed.status == 200 and not delayed.done()
    gate.set()
    assert (await asyncio.wait_for(delayed, 5)).status == 400
    assert idp.sleeps.delays == [1.0]


async def test_lockout_settings_are_per_realm(tmp_path, backend, aiohttp_client, unused_tcp_port_factory):
    """Rule 6: `lockout.account.max_failures`, `lockout_for` and the delays come from the realm file."""
    from tests.accounts.conftest import ACME

    strict = ACME.replace("lockout:\n", "lockout:\n  account: {free_failures: 1, max_failures: 3, lockout_for: 1h,"
                          " first_delay: 3s, max_delay: 10s}\n")
    idp = await build_idp(tmp_path, backend, aiohttp_client, unused_tcp_port_factory(),
                          mail=mail_yaml(tmp_path / "outbox"), outbox=tmp_path / "outbox", realms={"acme": strict})
    await idp.add_user(password=PASSWORD)
    assert await attempts(idp, "alice@example.com", "wrong", 4) == [400, 400, 400, 429]
    assert idp.sleeps.delays == [3.0, 6.0]
    resp, _ = await authorize(idp)
    locked = await submit_login(idp, resp.headers["Location"], "alice@example.com", PASSWORD)
    assert 3500 < int(locked.headers["Retry-After"]) <= 3600


async def test_parallel_guesses_across_accounts_still_lock_the_ip(idp):
    """Rule 6: a burst from one IP over many addresses ends locked (a failure finishing
    late must not overwrite the IP's lock)."""
    from tests.oauth.flow import form_fields

    resp, _ = await authorize(idp)
    fields = form_fields(await (await idp.client.get(resp.headers["Location"])).text())
    posts = [idp.client.post("/login/password", data={**fields, "email": f"user{i}@example.com",
                                                      "password": "wrong password"}, allow_redirects=False)
             for i in range(45)]
    statuses = [r.status for r in await asyncio.gather(*posts)]
    assert statuses.count(400) >= 30
    later = await submit_login(idp, resp.headers["Location"], "someone.else@example.com", "wrong password")
    assert later.status == 429 and "Too many failed sign-in attempts" in await later.text()


# ------------------------------------------------- the owner is never locked out (issue 16 item 5)
# OWASP Authentication Cheat Sheet / "Slow Down Online Guessing Attacks with Device Cookies":
# a browser that signed in to the account before carries a device cookie; failures from
# elsewhere do not lock it, and it has its own small budget whose lockout is its own.


async def other_browser(idp, aiohttp_client):
    """A second browser (its own cookie jar) on the same IdP: the attacker elsewhere."""
    return dataclasses.replace(idp, client=await aiohttp_client(idp.client.server))


async def lock_account_from(browser, email: str = "alice@example.com", count: int = 25) -> list[int]:
    """More failures than the account allows and the per-account rate limit admits (20 per 15 min)."""
    return await attempts(browser, email, "wrong password here", count)


async def test_a_browser_that_signed_in_before_is_not_locked_out_by_failures_elsewhere(idp, aiohttp_client):
    """OWASP device cookies: the account is locked for everybody else (429), yet the owner's
    browser, which signed in before, signs in with the right password, past the account's
    lockout and past the per-account rate limit the attacker used up."""
    await idp.add_user(password=PASSWORD)
    assert await login_for_code(idp, "alice@example.com", PASSWORD, prompt="login")
    cookies = {c.key: c for c in idp.client.session.cookie_jar}
    device = cookies["tessera_device_acme"]
    assert device["httponly"] and device["samesite"] == "Lax" and "alice" not in device.value  # opaque
    attacker = await other_browser(idp, aiohttp_client)
    assert (await lock_account_from(attacker))[-5:] == [429] * 5
    resp, _ = await authorize(attacker, prompt="login")
    assert (await submit_login(attacker, resp.headers["Location"], "alice@example.com", PASSWORD)).status == 429
    code, _verifier, _ = await login_for_code(idp, "alice@example.com", PASSWORD, prompt="login")
    assert code
    # Still true after the attacker keeps going (the cookie was renewed at that sign-in).
    await lock_account_from(attacker, count=5)
    assert (await login_for_code(idp, "alice@example.com", PASSWORD, prompt="login"))[0]


async def test_a_device_cookie_has_its_own_small_budget_and_locks_only_itself(idp, aiohttp_client):
    """OWASP device cookies: guesses from a trusted browser stay capped (`lockout.device`,
    10 failures), and that lockout is of the device cookie only: the account is not locked
    for another browser with the right password."""
    await idp.add_user(password=PASSWORD)
    await login_for_code(idp, "alice@example.com", PASSWORD, prompt="login")
    assert await attempts(idp, "alice@example.com", "wrong password here", 11) == [400] * 10 + [429]
    resp, _ = await authorize(idp, prompt="login")
    assert (await submit_login(idp, resp.headers["Location"], "alice@example.com", PASSWORD)).status == 429
    lockouts = [e for e in await idp.services.durable.list_events("acme") if e.type == "lockout"]
    assert [e.data["scope"] for e in lockouts] == ["device"]
    elsewhere = await other_browser(idp, aiohttp_client)
    assert (await login_for_code(elsewhere, "alice@example.com", PASSWORD, prompt="login"))[0]


async def test_a_device_cookie_is_bound_to_its_account(idp, aiohttp_client):
    """A device cookie from a sign-in to alice's account earns no trust for bob's; a forged
    cookie earns none either."""
    await idp.add_user("alice@example.com", PASSWORD)
    await idp.add_user("bob@example.com", PASSWORD)
    await login_for_code(idp, "alice@example.com", PASSWORD, prompt="login")
    attacker = await other_browser(idp, aiohttp_client)
    await lock_account_from(attacker, "bob@example.com")
    resp, _ = await authorize(idp, prompt="login")
    assert (await submit_login(idp, resp.headers["Location"], "bob@example.com", PASSWORD)).status == 429
    attacker.client.session.cookie_jar.update_cookies({"tessera_device_acme": "A" * 43})
    resp, _ = await authorize(attacker, prompt="login")
    assert (await submit_login(attacker, resp.headers["Location"], "bob@example.com", PASSWORD)).status == 429


async def test_a_lockout_mails_the_owner_a_reset_link_that_always_gets_them_in(idp, aiohttp_client):
    """Issue 16 item 5: at the lockout the owner (and only an existing account's owner) is
    mailed a reset link; using it ends the lockout and trusts that browser, so the owner
    signs in even though the attacker locks the account again straight away."""
    await idp.add_user(password=PASSWORD)
    attacker = await other_browser(idp, aiohttp_client)
    await lock_account_from(attacker)
    await lock_account_from(attacker, "nobody@example.com", count=21)
    mails = await idp.mails()
    assert [m["To"] for m in mails] == ["alice@example.com"]
    assert "paused" in mails[0]["Subject"] and "wrong password here" not in text_of(mails[0])
    owner = await other_browser(idp, aiohttp_client)
    await reset(owner, link_in(mails[0], "/reset-password"), "a brand new passphrase")
    await lock_account_from(attacker, count=25)
    resp, _ = await authorize(attacker, prompt="login")
    assert (await submit_login(attacker, resp.headers["Location"], "alice@example.com",
                               "a brand new passphrase")).status == 429
    assert (await login_for_code(owner, "alice@example.com", "a brand new passphrase", prompt="login"))[0]


async def test_lockout_counts_every_spelling_of_an_address_as_one_account(idp):
    """Issue 16 item 6: `ALICE@…`, fullwidth `ａlice@…` and `alice@EXAMPLE.com` are one account
    (NFKC, IDNA, case-insensitive): switching spellings buys no extra guesses."""
    await idp.add_user(password=PASSWORD)
    spellings = ["alice@example.com", "ALICE@example.com", "\uff41lice@example.com", "alice@EXAMPLE.com"]
    resp, _ = await authorize(idp, prompt="login")
    statuses = [(await submit_login(idp, resp.headers["Location"], spellings[i % 4], "wrong password")).status
                for i in range(21)]
    assert statuses == [400] * 20 + [429]


def lockout_scopes(events) -> list[str]:
    return [e.data["scope"] for e in events if e.type == "lockout"]


async def test_a_device_cookie_stops_being_trusted_when_the_password_is_reset(idp, aiohttp_client):
    """OWASP device cookies are proof of an earlier sign-in, and a password reset says that
    sign-in may not have been the owner's: a browser that signed in before the reset gets
    no trust from its device cookie any more; its guesses count against the account (whose
    lockout then holds for everybody else) instead of a budget of its own. The browser
    that did the reset stays trusted."""
    await idp.add_user(password=PASSWORD)
    intruder = await other_browser(idp, aiohttp_client)
    assert (await login_for_code(intruder, "alice@example.com", PASSWORD, prompt="login"))[0]  # a device cookie
    idp.clock.advance(1)
    owner = await other_browser(idp, aiohttp_client)
    await forgot(owner, "alice@example.com")
    assert (await reset(owner, link_in(await idp.last_mail("alice@example.com"), "/reset-password"),
                        "a brand new passphrase")).status == 200
    idp.clock.advance(1)
    statuses = await lock_account_from(intruder, count=21)
    assert statuses[-1] == 429
    assert lockout_scopes(await idp.services.durable.list_events("acme")) == ["account"]
    stranger = await other_browser(idp, aiohttp_client)
    resp, _ = await authorize(stranger, prompt="login")
    assert (await submit_login(stranger, resp.headers["Location"], "alice@example.com",
                               "a brand new passphrase")).status == 429
    assert (await login_for_code(owner, "alice@example.com", "a brand new passphrase", prompt="login"))[0]


async def test_a_pre_registrants_device_cookie_stops_being_trusted_when_the_owner_proves_the_address(
        tmp_path, backend, aiohttp_client, unused_tcp_port_factory):
    """Account pre-hijacking (Sudhodanan & Paverd 2022) meets device cookies: Mallory
    registers the victim's address and signs in (her browser gets a device cookie); the
    victim proves the address (the verification link). Mallory's cookie earns no trust for
    the account any more: her guesses lock the account, not just her cookie."""
    outbox = tmp_path / "outbox"
    idp = await build_idp(tmp_path, backend, aiohttp_client, unused_tcp_port_factory(),
                          mail=mail_yaml(outbox), outbox=outbox, realms={"acme": PERMISSIVE_ACME})
    mallory, _tokens, _user = await pre_registered(idp, aiohttp_client)
    link = link_in(await idp.last_mail(VICTIM), "/verify-email")
    victim = await other_browser(idp, aiohttp_client)
    assert (await verify(victim, link)).status == 200
    idp.clock.advance(1)
    # A trusted cookie would be locked after its 10 failures (`lockout.device`); hers is not
    # trusted, so she meets the account's limits (her sign-in counted: 19 failures, then 429).
    assert await lock_account_from(mallory, VICTIM, count=21) == [400] * 19 + [429] * 2
    assert "device" not in lockout_scopes(await idp.services.durable.list_events("acme"))
