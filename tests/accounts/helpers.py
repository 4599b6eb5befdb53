"""Driving the account pages over HTTP as a browser would (GET the form, POST it back
with its hidden fields)."""

from __future__ import annotations

from typing import Any

from tests.accounts.conftest import PASSWORD, form_action, hidden_fields


async def get_form(idp, path: str) -> tuple[int, str, str, dict[str, str]]:
    """GET a page with a form: (status, html, action, hidden fields)."""
    page = await idp.client.get(path, allow_redirects=False)
    html = await page.text()
    return page.status, html, form_action(html), hidden_fields(html)


async def submit(idp, path: str, **fields: Any):
    """GET `path`, then POST its form with `fields` added."""
    status, html, action, hidden = await get_form(idp, path)
    assert status == 200, html
    return await idp.client.post(action, data={**hidden, **fields}, allow_redirects=False)


async def register(idp, email: str = "new@example.com", password: str = PASSWORD, name: str = "New Person",
                   *, flow: str | None = None, prefix: str = ""):
    path = f"{prefix}/register" + (f"?flow={flow}" if flow else "")
    response = await submit(idp, path, email=email, password=password, name=name)
    await idp.services.mail.drain()  # the account is made after the response (issue 16 item 7)
    return response


async def verify(idp, link: str):
    """Open the verification link and press its button."""
    return await submit(idp, link)


async def forgot(idp, email: str, *, flow: str | None = None, prefix: str = ""):
    response = await submit(idp, f"{prefix}/forgot-password" + (f"?flow={flow}" if flow else ""), email=email)
    await idp.services.mail.drain()  # the link is issued and mailed after the response (issue 16 item 7)
    return response


async def reset(idp, link: str, password: str, confirm: str | None = None):
    return await submit(idp, link, password=password, password_confirm=password if confirm is None else confirm)


def flow_id(location: str) -> str:
    from tests.oauth.conftest import query_of

    return query_of(location)["flow"]
