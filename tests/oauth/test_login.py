"""Password login: generic failure (no user enumeration), CSRF-bound flows, rate limits
(seed security musts), argon2id off the event loop."""

from __future__ import annotations

import dataclasses
import re

from tests.oauth.conftest import query_of
from tests.oauth.flow import authorize, exchange, form_fields, submit_login


async def test_wrong_password_and_unknown_user_get_the_same_answer(idp):
    await idp.add_user()
    resp, _ = await authorize(idp)
    wrong = await submit_login(idp, resp.headers["Location"], "alice@example.com", "wrong password!")
    unknown = await submit_login(idp, resp.headers["Location"], "bob@example.com", "wrong password!")
    assert wrong.status == unknown.status == 400
    strip = lambda html: re.sub(r'value="[^"]*"', "", html)  # noqa: E731 - flow/csrf/email differ
    assert strip(await wrong.text()) == strip(await unknown.text())
    assert "The email or password is not correct." in await wrong.text()


async def test_login_page_shows_form_with_csrf_and_login_hint(idp):
    resp, _ = await authorize(idp, login_hint="carol@example.com")
    page = await (await idp.client.get(resp.headers["Location"])).text()
    assert 'value="carol@example.com"' in page and form_fields(page)["csrf"]
    assert '<label for="password">' in page


async def test_login_from_another_browser_is_refused(idp, aiohttp_client):
    """The flow is bound to the browser that started it (no login CSRF)."""
    await idp.add_user()
    resp, _ = await authorize(idp)
    page = await (await idp.client.get(resp.headers["Location"])).text()
    fields = form_fields(page)
    idp.client.session.cookie_jar.clear()
    resp = await idp.client.post("/login/password", data={**fields, "email": "alice@example.com",
                                                          "password": "correct horse battery"},
                                 allow_redirects=False)
    assert resp.status == 400 and "another browser" in await resp.text()


async def test_login_rate_limit_per_account(idp):
    """Rate-limit /login/* per account: 429 with Retry-After (seed)."""
    await idp.add_user()
    resp, _ = await authorize(idp)
    location = resp.headers["Location"]
    statuses = []
    for _ in range(21):
        statuses.append((await submit_login(idp, location, "alice@example.com", "bad password")).status)
    assert statuses[:20] == [400] * 20 and statuses[20] == 429
    last = await submit_login(idp, location, "alice@example.com", "correct horse battery")
    assert last.status == 429 and int(last.headers["Retry-After"]) > 0


async def test_successful_login_redirects_with_code(idp):
    await idp.add_user()
    resp, _ = await authorize(idp)
    resp = await submit_login(idp, resp.headers["Location"], "ALICE@example.com", "correct horse battery")
    assert "code" in query_of(resp.headers["Location"])


class RecordingStore:
    """The ephemeral store as the app has it, with the names of the calls made."""

    def __init__(self, inner):
        self.inner, self.calls = inner, []

    def __getattr__(self, name):
        attribute = getattr(self.inner, name)
        if not callable(attribute) or name.startswith("_"):
            return attribute

        async def call(*args, **kwargs):
            self.calls.append((name, args))
            return await attribute(*args, **kwargs)

        return call


async def test_a_sign_in_stores_session_code_and_flow_end_in_one_round_trip(idp):
    """After the password check, a sign-in's writes (the lockout count reset, the session,
    the code, the end of the flow) reach the ephemeral store together in one `write_many`
    (one Redis MULTI/EXEC), before the redirect: the code is redeemable at once (RFC 6749
    §4.1.3), the flow is over, and the session signs the browser in (OIDC Core §3.1.2.6)."""
    await idp.add_user()
    resp, verifier = await authorize(idp)
    page = await idp.client.get(resp.headers["Location"], allow_redirects=False)
    html = await page.text()
    fields = form_fields(html)
    action = re.search(r'<form method="post" action="([^"]+)"', html).group(1)
    recording = idp.services.ephemeral = RecordingStore(idp.services.ephemeral)
    resp = await idp.client.post(action, data={**fields, "email": "alice@example.com",
                                               "password": "correct horse battery"}, allow_redirects=False)
    assert resp.status == 303
    writes = [(name, args) for name, args in recording.calls if name in ("put", "delete", "swap", "write_many")]
    assert [name for name, _ in writes] == ["write_many"]
    puts, deletes = writes[0][1]
    # bf: the device cookie's record (engine.accounts.lockout); user-sessions: the user's session index
    assert sorted(key.split(":")[1] for key, _, _ in puts) == ["bf", "code", "sess", "user-sessions"]
    assert sorted(key.split(":")[1] for key in deletes) == ["bf", "flow"]
    code = query_of(resp.headers["Location"])["code"]
    assert (await exchange(idp, code, verifier)).status == 200
    again = await idp.client.post(action, data={**fields, "email": "alice@example.com",
                                                "password": "correct horse battery"}, allow_redirects=False)
    assert again.status == 400  # the flow is over
    resp, _ = await authorize(idp, prompt="none")
    assert "code" in query_of(resp.headers["Location"])


async def test_a_sign_in_reads_its_user_once(idp):
    """The password provider reads the user with its hash in one query and hands it back
    with the identity: the engine checks that user (not disabled) instead of reading it
    again before issuing the code."""
    await idp.add_user()
    resp, _ = await authorize(idp)
    page = await idp.client.get(resp.headers["Location"], allow_redirects=False)
    html = await page.text()
    action = re.search(r'<form method="post" action="([^"]+)"', html).group(1)
    recording = idp.services.durable = RecordingStore(idp.services.durable)
    resp = await idp.client.post(action, data={**form_fields(html), "email": "alice@example.com",
                                               "password": "correct horse battery"}, allow_redirects=False)
    assert "code" in query_of(resp.headers["Location"])
    reads = [name for name, _ in recording.calls if name.startswith("get_")]
    assert reads == ["get_user_and_credential_by_email"]


async def test_the_engine_checks_the_user_a_provider_hands_back(idp, monkeypatch):
    """A credentials provider that lets a disabled user through does not get it a code:
    the engine checks the user it is handed (OIDC Core §3.1.2.6: the user must sign in)."""
    await idp.add_user()
    provider = idp.realm().providers["password"]
    original = provider.login

    async def lets_disabled_through(email, password):
        identity = await original(email, password)
        return dataclasses.replace(identity, user=dataclasses.replace(identity.user, disabled=True))

    monkeypatch.setattr(provider, "login", lets_disabled_through)
    resp, _ = await authorize(idp)
    resp = await submit_login(idp, resp.headers["Location"], "alice@example.com", "correct horse battery")
    assert resp.status == 303 and "/login?" in resp.headers["Location"]
    assert "code" not in query_of(resp.headers["Location"])
