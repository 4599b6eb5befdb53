"""CSRF protection of the account forms that may be used without a pending authorization
flow (register, verify email, resend, forgot and reset password).

A double-submit token bound to a cookie: the browser holds a random secret in an
`HttpOnly`, `SameSite=Lax` cookie; every form carries `sha256("tessera csrf" + realm +
secret)`. A cross-site page can neither read the cookie nor the token, and a form posted
without the matching cookie is refused. (The login and consent forms use the stronger
flow-bound token of engine.oauth.flows, since a flow always exists there.)
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from typing import TYPE_CHECKING

from engine.accounts.sessions import secure_cookies
from engine.errors import InvalidRequest
from engine.exchange import CookieSink
from engine.realm import Realm
from engine.secrets_util import random_token, sha256_hex

if TYPE_CHECKING:
    from engine.services import Services


class CsrfFailed(InvalidRequest):
    """The form did not come from a page this browser was given."""


def cookie_name(realm: Realm) -> str:
    return f"tessera_csrf_{realm.name}"


def token_for(realm: Realm, secret: str) -> str:
    return sha256_hex(f"tessera csrf\0{realm.name}\0{secret}")


def browser_secret(cookies: Mapping[str, str], realm: Realm) -> tuple[str, bool]:
    """The browser's CSRF secret (from the request's `cookies`), and whether it is new (to
    be set as a cookie)."""
    secret = cookies.get(cookie_name(realm), "")
    if 20 <= len(secret) <= 100:
        return secret, False
    return random_token(32), True


def set_cookie(response: CookieSink, services: Services, realm: Realm, secret: str) -> None:
    response.set_cookie(cookie_name(realm), secret, path="/", httponly=True, samesite="Lax",
                        secure=secure_cookies(services))


def check(cookies: Mapping[str, str], realm: Realm, params: dict[str, str]) -> None:
    """The form's token matches the browser's secret (the request's `cookies`)."""
    secret = cookies.get(cookie_name(realm), "")
    sent = params.get("csrf", "")
    if not secret or not sent or not hmac.compare_digest(sent, token_for(realm, secret)):
        raise CsrfFailed("the form was not submitted from this site's page (or cookies are off);"
                         " go back, reload the page and try again")
