"""`max_age=0` at the authorization endpoint (OIDC Core §3.1.2.1, errata set 2: "max_age=0
is equivalent to prompt=login"): a fresh sign-in always, even within the same second as
the last one, with the frozen clock standing still to prove it."""

from __future__ import annotations

from tests.oauth.conftest import SPA_REDIRECT, query_of
from tests.oauth.flow import authorize, login_for_code, submit_login


async def test_max_age_zero_forces_a_new_login_in_the_same_second(idp):
    await idp.add_user()
    await login_for_code(idp)  # a session whose auth_time is this very second
    resp, _ = await authorize(idp, max_age="0")
    assert resp.status == 303 and "/login?flow=" in resp.headers["Location"]
    # The sign-in made inside that flow satisfies it (no loop back to the login page).
    done = await submit_login(idp, resp.headers["Location"], "alice@example.com", "correct horse battery")
    assert done.headers["Location"].startswith(SPA_REDIRECT)
    assert "code" in query_of(done.headers["Location"])


async def test_max_age_zero_with_prompt_none_is_login_required(idp):
    """§3.1.2.6: with prompt=none the sign-in max_age=0 demands cannot happen → login_required."""
    await idp.add_user()
    await login_for_code(idp)
    resp, _ = await authorize(idp, max_age="0", prompt="none")
    assert query_of(resp.headers["Location"])["error"] == "login_required"
