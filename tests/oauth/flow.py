"""Driving the browser side of the code flow through HTTP, as a user agent would."""

from __future__ import annotations

import re
from html import unescape
from typing import Any

from tests.oauth.conftest import SPA_REDIRECT, pkce_pair, query_of


def form_fields(html: str) -> dict[str, str]:
    return {m.group(1): unescape(m.group(2))
            for m in re.finditer(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', html)}


async def authorize(idp, *, client_id="spa", redirect_uri=SPA_REDIRECT, scope="openid profile email offline_access",
                    state="st-1", nonce="n-1", challenge: str | None = "auto", prefix="", **extra: Any):
    """GET /authorize; returns (response, verifier)."""
    verifier = None
    params = {"response_type": "code", "client_id": client_id, "redirect_uri": redirect_uri,
              "scope": scope, "state": state, "nonce": nonce}
    if challenge == "auto":
        verifier, challenge = pkce_pair()
    if challenge is not None:
        params.update(code_challenge=challenge, code_challenge_method="S256")
    params.update(extra)
    params = {k: v for k, v in params.items() if v is not None}
    resp = await idp.client.get(f"{prefix}/authorize", params=params, allow_redirects=False)
    return resp, verifier


async def submit_login(idp, login_location: str, email: str, password: str):
    page = await idp.client.get(login_location, allow_redirects=False)
    assert page.status == 200, await page.text()
    html = await page.text()
    fields = form_fields(html)
    action = re.search(r'<form method="post" action="([^"]+)"', html).group(1)
    return await idp.client.post(action, data={**fields, "email": email, "password": password},
                                 allow_redirects=False)


async def submit_consent(idp, consent_location: str, decision: str = "allow"):
    page = await idp.client.get(consent_location, allow_redirects=False)
    assert page.status == 200, await page.text()
    html = await page.text()
    action = re.search(r'<form method="post" action="([^"]+)"', html).group(1)
    return await idp.client.post(action, data={**form_fields(html), "decision": decision}, allow_redirects=False)


async def login_for_code(idp, email="alice@example.com", password="correct horse battery", *,
                         client_id="spa", redirect_uri=SPA_REDIRECT, consent=True, **kw):
    """Full browser flow; returns (code, verifier, final redirect query)."""
    resp, verifier = await authorize(idp, client_id=client_id, redirect_uri=redirect_uri, **kw)
    assert resp.status == 303, await resp.text()
    location = resp.headers["Location"]
    if "/login?" in location:
        resp = await submit_login(idp, location, email, password)
        assert resp.status == 303, await resp.text()
        location = resp.headers["Location"]
    if "/consent?" in location:
        assert consent, "unexpected consent page"
        resp = await submit_consent(idp, location)
        assert resp.status == 303
        location = resp.headers["Location"]
    assert location.startswith(redirect_uri), location
    query = query_of(location)
    return query.get("code"), verifier, query


async def exchange(idp, code, verifier, *, client_id="spa", redirect_uri=SPA_REDIRECT, auth=None, prefix="", **extra):
    data = {"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri, **extra}
    if verifier is not None:
        data["code_verifier"] = verifier
    headers = {}
    if auth is None:
        data["client_id"] = client_id
    else:
        headers["Authorization"] = basic(*auth)
    return await idp.client.post(f"{prefix}/token", data=data, headers=headers)


def basic(client_id: str, secret: str) -> str:
    """RFC 6749 §2.3.1: form-urlencode, then base64."""
    import base64
    from urllib.parse import quote_plus

    raw = f"{quote_plus(client_id)}:{quote_plus(secret)}".encode()
    return "Basic " + base64.b64encode(raw).decode()
