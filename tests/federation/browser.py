"""Driving a federated login through HTTP, as a browser would: Tessera's /authorize, the
login page's "Continue with …" button, the upstream (which signs the user in at once),
the callback, then Tessera's /token and /userinfo."""

from __future__ import annotations

import re
from html import unescape
from typing import Any

from tests.oauth.conftest import query_of
from tests.oauth.flow import authorize, exchange


async def start_at_login_page(fed, provider: str = "google", **authorize_params: Any) -> tuple[str, str | None]:
    """/authorize, then the provider's button on the login page; returns (upstream URL, PKCE verifier)."""
    idp = fed.idp
    resp, verifier = await authorize(idp, **authorize_params)
    assert resp.status == 303, await resp.text()
    login_page = await idp.client.get(resp.headers["Location"], allow_redirects=False)
    html = await login_page.text()
    button = re.search(rf'href="([^"]*/login/{provider}\?flow=[^"]+)"', html)
    assert button, html
    resp = await idp.client.get(unescape(button.group(1)), allow_redirects=False)
    assert resp.status == 303, await resp.text()
    return resp.headers["Location"], verifier


async def through_upstream(fed, upstream_url: str) -> str:
    """The upstream's answer: where it sends the browser back to (Tessera's callback)."""
    resp = await fed.idp.client.session.get(upstream_url, allow_redirects=False)
    assert resp.status == 302, await resp.text()
    return resp.headers["Location"]


async def open_callback(fed, callback_url: str):
    issuer = fed.idp.issuer
    assert callback_url.startswith(issuer + "/"), callback_url
    return await fed.idp.client.get(callback_url[len(issuer):], allow_redirects=False)


async def federated_login(fed, provider: str = "google", *, new_browser: bool = True,
                          **authorize_params: Any) -> tuple[str, str | None]:
    """A whole successful federated login; returns (Tessera code, PKCE verifier)."""
    if new_browser:
        fed.idp.client.session.cookie_jar.clear()
    upstream, verifier = await start_at_login_page(fed, provider, **authorize_params)
    resp = await open_callback(fed, await through_upstream(fed, upstream))
    assert resp.status == 303, await resp.text()
    query = query_of(resp.headers["Location"])
    assert "code" in query, query
    return query["code"], verifier


async def tokens_and_userinfo(fed, code: str, verifier: str | None, **exchange_args: Any) -> tuple[dict, dict]:
    """The end result at Tessera: the token response and what /userinfo says."""
    resp = await exchange(fed.idp, code, verifier, **exchange_args)
    assert resp.status == 200, await resp.text()
    tokens = await resp.json()
    info = await fed.idp.client.get("/userinfo", headers={"Authorization": f"Bearer {tokens['access_token']}"})
    assert info.status == 200, await info.text()
    return tokens, await info.json()


async def login_and_userinfo(fed, provider: str = "google", **kw: Any) -> tuple[dict, dict]:
    code, verifier = await federated_login(fed, provider, **kw)
    return await tokens_and_userinfo(fed, code, verifier)
