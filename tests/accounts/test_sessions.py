"""Browser SSO sessions (issue 23 items 12 and 13), through HTTP on both store pairs:

- idle timeout: a session unused for `lifetimes.session_idle` (1 h by default; Keycloak's
  SSO Session Idle is 30 min) is over, besides the absolute `lifetimes.session`; every use
  (an authorization, `prompt=none`) slides it, never past the absolute end (OWASP Session
  Management Cheat Sheet, "Idle Timeout" and "Absolute Timeout"); the time of last use is
  stored and compared with the app clock (a FrozenClock here: no sleeping);
- recording a use costs at most one write a minute per session;
- at most `max_sessions_per_user` sessions per user and realm, the oldest ended first.
"""

from __future__ import annotations

from typing import Any

from tests.accounts.conftest import ACME, OTHER, build_idp, mail_yaml
from tests.oauth.conftest import query_of
from tests.oauth.flow import authorize, login_for_code

MINUTE = 60


async def signed_in_silently(idp) -> bool:
    """OIDC Core §3.1.2.6: `prompt=none` answers with a code only for a live session."""
    resp, _ = await authorize(idp, prompt="none")
    query = query_of(resp.headers["Location"])
    assert "code" in query or query.get("error") == "login_required", query
    return "code" in query


async def test_session_ends_after_idle_timeout(idp):
    assert idp.realm().config.lifetimes.session_idle.total_seconds() <= 2 * 3600
    await idp.add_user()
    await login_for_code(idp)
    idp.clock.advance(59 * MINUTE)
    assert await signed_in_silently(idp)
    idp.clock.advance(60 * MINUTE)  # an hour without use, well inside the 12 h absolute lifetime
    assert not await signed_in_silently(idp)
    # and it stays over (the next request does not bring it back)
    assert not await signed_in_silently(idp)


async def test_every_use_slides_the_idle_timeout_but_not_the_absolute_end(idp):
    await idp.add_user()
    await login_for_code(idp)
    used = 0
    while used + 50 * MINUTE < 12 * 3600:
        idp.clock.advance(50 * MINUTE)  # always within the idle timeout of the last use
        used += 50 * MINUTE
        assert await signed_in_silently(idp), f"signed out after {used // MINUTE} min of regular use"
    idp.clock.advance(12 * 3600 - used)  # the absolute end, reached while still in use
    assert not await signed_in_silently(idp)


class CountingStore:
    """The ephemeral store, counting writes of the session's last-use key."""

    def __init__(self, inner: Any):
        self.inner, self.touches = inner, 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def put(self, key: str, *args: Any, **kwargs: Any) -> bool:
        self.touches += ":sess-seen:" in key
        return await self.inner.put(key, *args, **kwargs)


async def test_recording_a_use_is_one_write_a_minute_at_most(idp):
    await idp.add_user()
    await login_for_code(idp)
    counting = idp.services.ephemeral = CountingStore(idp.services.ephemeral)
    for _ in range(5):
        idp.clock.advance(10)  # five uses within a minute of the sign-in: no write
        assert await signed_in_silently(idp)
    assert counting.touches == 0
    idp.clock.advance(MINUTE)
    assert await signed_in_silently(idp)
    assert counting.touches == 1


async def _limited_idp(tmp_path, backend, aiohttp_client, port: int, limit: int):
    acme = ACME.replace("display_name: ACME\n", f"display_name: ACME\nmax_sessions_per_user: {limit}\n")
    return await build_idp(tmp_path, backend, aiohttp_client, port, mail=mail_yaml(tmp_path / "outbox"),
                           realms={"acme": acme, "other": OTHER})


def _session_cookie(idp) -> tuple[str, str]:
    for cookie in idp.client.session.cookie_jar:
        if cookie.key.startswith("tessera_session_acme"):
            return cookie.key, cookie.value
    raise AssertionError("no session cookie")


async def _as_browser(idp, cookie: tuple[str, str]) -> bool:
    idp.client.session.cookie_jar.clear()
    idp.client.session.cookie_jar.update_cookies({cookie[0]: cookie[1]}, idp.client.make_url("/"))
    return await signed_in_silently(idp)


async def test_at_most_max_sessions_per_user_oldest_ended_first(tmp_path, backend, aiohttp_client,
                                                                 unused_tcp_port_factory):
    """Three browsers sign in with a limit of two: the first (oldest) session ends, the
    two newest stay; another user's sessions are not affected."""
    idp = await _limited_idp(tmp_path, backend, aiohttp_client, unused_tcp_port_factory(), 2)
    await idp.add_user()
    await idp.add_user("bob@example.com")
    await login_for_code(idp, "bob@example.com")
    bob = _session_cookie(idp)
    browsers = []
    for _ in range(3):
        idp.client.session.cookie_jar.clear()
        idp.clock.advance(5)
        await login_for_code(idp)
        browsers.append(_session_cookie(idp))
    assert [await _as_browser(idp, cookie) for cookie in browsers] == [False, True, True]
    assert await _as_browser(idp, bob)


async def test_sessions_that_already_ended_do_not_count(tmp_path, backend, aiohttp_client, unused_tcp_port_factory):
    """Sessions that ended already (idled out) are not counted against the limit: a new
    sign-in then ends no live session, not even the oldest one."""
    idp = await _limited_idp(tmp_path, backend, aiohttp_client, unused_tcp_port_factory(), 2)
    await idp.add_user()
    await login_for_code(idp)
    oldest = _session_cookie(idp)
    idp.clock.advance(5)
    idp.client.session.cookie_jar.clear()
    await login_for_code(idp)
    idled = _session_cookie(idp)
    idp.clock.advance(50 * MINUTE)
    assert await _as_browser(idp, oldest)  # in use: stays alive
    idp.clock.advance(20 * MINUTE)  # the second one, unused for 70 min, has idled out
    idp.client.session.cookie_jar.clear()
    await login_for_code(idp)
    newest = _session_cookie(idp)
    assert [await _as_browser(idp, c) for c in (oldest, idled, newest)] == [True, False, True]
