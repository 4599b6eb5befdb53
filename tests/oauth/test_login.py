"""Password login: generic failure (no user enumeration), CSRF-bound flows, rate limits
(seed security musts), argon2id off the event loop."""

from __future__ import annotations

import re

from tests.oauth.conftest import query_of
from tests.oauth.flow import authorize, form_fields, submit_login


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
