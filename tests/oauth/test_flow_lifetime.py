"""A pending authorization request nobody has touched expires within minutes (issue 23
item 9; `lifetimes.pending_flow`, 10 min by default), on the app clock: its login page
then answers "start again" instead of resuming a half-hour-old request."""

from __future__ import annotations

from tests.oauth.conftest import SPA_REDIRECT
from tests.oauth.flow import authorize, submit_login


async def test_untouched_flow_expires_after_pending_flow(idp):
    await idp.add_user()
    assert idp.realm().config.lifetimes.pending_flow.total_seconds() <= 600
    resp, _ = await authorize(idp)
    login = resp.headers["Location"]
    idp.clock.advance(9 * 60)  # still within the lifetime: the page works
    assert (await idp.client.get(login, allow_redirects=False)).status == 200
    idp.clock.advance(61)  # 10 min 1 s since the flow was saved
    page = await idp.client.get(login, allow_redirects=False)
    assert page.status == 400
    assert "expired" in await page.text()


async def test_a_flow_used_in_time_still_completes(idp):
    await idp.add_user()
    resp, _ = await authorize(idp)
    idp.clock.advance(5 * 60)
    done = await submit_login(idp, resp.headers["Location"], "alice@example.com", "correct horse battery")
    assert done.headers["Location"].startswith(SPA_REDIRECT)
