"""What the account pages share: rendering with the realm's templates and a CSRF token,
the optional pending authorization flow they continue, and small form helpers."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any

from engine.accounts import csrf
from engine.accounts.emails import parse_email
from engine.accounts.users import password_provider
from engine.errors import NotFound
from engine.exchange import Answer, Call, CookieJar
from engine.hookspecs import PasswordCapability
from engine.oauth.flows import Flow, FlowExpired, load_flow, realm_base
from engine.realm import Realm
from engine.templates import render

if TYPE_CHECKING:
    from engine.services import Services

MAX_NAME = 200


def page(call: Call, services: Services, realm: Realm, template: str, *, status: int = 200,
         headers: dict[str, str] | None = None, flow: Flow | None = None, **context: Any) -> Answer:
    """Render an account page with the realm's templates, a CSRF token and its cookie."""
    secret, fresh = csrf.browser_secret(call.cookies, realm)
    answer = render(realm, services, template, status=status, base=realm_base(call, realm),
                    csrf=csrf.token_for(realm, secret), flow=flow, **context)
    if fresh:
        cookies = CookieJar()
        csrf.set_cookie(cookies, services, realm, secret)
        answer = answer.with_cookies(cookies)
    return answer.with_headers(headers) if headers else answer


def too_many(call: Call, services: Services, realm: Realm, retry_after: int, message: str,
             flow: Flow | None = None) -> Answer:
    """429 with `Retry-After`, as a page of the realm."""
    return page(call, services, realm, "message.html", status=429,
                headers={"Retry-After": str(max(1, retry_after))},
                flow=flow, title="Please wait a moment", message=message, alert=True)


async def optional_flow(call: Call, services: Services, realm: Realm, flow_id: str | None) -> Flow | None:
    """The pending authorization flow to continue afterwards, if it is still alive and was
    started in this browser; account pages also work without one."""
    if not flow_id:
        return None
    try:
        return await load_flow(call.cookies, services, realm, flow_id)
    except FlowExpired:
        return None


def password_provider_or_404(realm: Realm, *, registration: bool = False) -> PasswordCapability:
    provider = password_provider(realm)
    if provider is None:
        raise NotFound("this realm has no email and password sign-in")
    if registration and not provider.registration:
        raise NotFound("this realm does not allow creating accounts here")
    return provider


def valid_email(email: str) -> bool:
    """An address engine.accounts.emails accepts (the forms then use its normalised form)."""
    return parse_email(email) is not None


def human_duration(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size and seconds % size == 0 and not (unit == "day" and seconds < 2 * 86400):
            count = seconds // size
            return f"{count} {unit}{'s' if count != 1 else ''}"
    minutes = max(1, round(seconds / 60))
    return f"{minutes} minute{'s' if minutes != 1 else ''}"
