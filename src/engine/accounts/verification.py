"""Email verification (`/verify-email`, `/verify-email/resend`).

Verifying proves the mailbox: on an account nobody had proven, whatever was set before
(the password, sessions, refresh families, federated links) is removed
(engine.accounts.proof), and the page goes on to a form where the owner chooses the
password (a reset token handed out by this proof).

The link carries a single-use token (engine.accounts.onetime) that expires after the
realm's `lifetimes.email_verification` (24 h by default). Opening the link shows a
confirmation button; only its POST uses the token up, so a mail scanner that prefetches
links cannot burn it. Until the address is verified the user can sign in, but tokens say
`email_verified: false` and the realm's `refresh_requires_verified_email` withholds
refresh tokens (engine.oauth.grants.common.refresh_allowed).

When the link is opened in the browser that started a pending authorization (the
register link of the sign-in page carries `?flow=`), the flow continues: to the sign-in
page with the address filled in, or straight on if the browser is signed in already.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from engine.accounts import csrf, onetime
from engine.accounts.emails import email_identity
from engine.accounts.pages import (
    human_duration,
    optional_flow,
    page,
    password_provider_or_404,
    too_many,
    valid_email,
)
from engine.accounts.proof import EMAIL_VERIFIED, address_proven
from engine.accounts.recovery import issue_reset_token, set_password_form
from engine.accounts.sessions import BrowserSession, current_session, secure_cookies
from engine.accounts.users import password_provider
from engine.exchange import Answer, Call, CookieJar, CookieSink
from engine.hookspecs import PasswordCapability
from engine.oauth.authorize import continue_flow
from engine.oauth.flows import Flow, back_to_application, flow_client, save_flow, start_flow
from engine.oauth.params import form_params
from engine.oauth.ratelimit import hit
from engine.realm import Realm
from engine.secrets_util import sha256_hex
from engine.store.protocols import User

if TYPE_CHECKING:
    from engine.services import Services

VERIFICATION_SENT = "email_verification_sent"
PASSWORD_NEXT = ("Thank you: {email} is verified. Choose the password you will sign in with"
                 " (any password set before the address was verified no longer works).")


REGISTRANT_COOKIE = "tessera_registrant_"


def registrant_cookie(realm: Realm) -> str:
    return REGISTRANT_COOKIE + realm.name


def set_registrant_cookie(response: CookieSink, services: Services, realm: Realm, secret: str) -> None:
    """The browser that registered an address holds this secret; the account's verification
    link is bound to its hash (`verification_link(registrant=...)`)."""
    response.set_cookie(registrant_cookie(realm), secret, path="/", httponly=True, samesite="Lax",
                        secure=secure_cookies(services),
                        max_age=int(realm.config.lifetimes.email_verification.total_seconds()))


def _from_registrant(cookies: Mapping[str, str], realm: Realm, data: dict[str, Any]) -> bool:
    """The link is opened in the browser that registered the address (the request's
    `cookies`): whoever chose the password has just proven the mailbox too."""
    expected, secret = data.get("registrant"), cookies.get(registrant_cookie(realm))
    return bool(expected and secret) and hmac.compare_digest(sha256_hex(secret), expected)


async def verification_link(services: Services, realm: Realm, user: User, *, flow_id: str | None = None,
                            registrant: str | None = None) -> str:
    """A verification link for `user`; `registrant`: the SHA-256 of the registering
    browser's secret (only for the account that registration has just created)."""
    data = {"user_id": user.id, "email": (user.email or "").lower(), "flow": flow_id, "registrant": registrant,
            "client": await flow_client(services, realm, flow_id)}
    token = await onetime.issue(services, realm, onetime.VERIFY_EMAIL, data,
                                realm.config.lifetimes.email_verification)
    return f"{realm.issuer}/verify-email?token={token}"


async def send_verification(services: Services, realm: Realm, user: User, *, flow_id: str | None = None,
                            registrant: str | None = None) -> bool:
    link = await verification_link(services, realm, user, flow_id=flow_id, registrant=registrant)
    return await services.mail.send(
        realm, user.email, "verify_email", link=link,
        expires_in=human_duration(realm.config.lifetimes.email_verification),
    )


def _invalid(call: Call, services: Services, realm: Realm) -> Answer:
    return page(call, services, realm, "link_invalid.html", status=400, kind="verify")


async def verify_page(services: Services, realm: Realm, call: Call) -> Answer:
    """GET /verify-email?token=…: confirm before the token is used up."""
    token = call.query.get("token")
    user = await onetime.link_user(services, realm, await onetime.peek(services, realm, onetime.VERIFY_EMAIL, token))
    if user is None:
        return _invalid(call, services, realm)
    return page(call, services, realm, "verify_email.html", token=token, email=user.email)


async def verify(services: Services, realm: Realm, call: Call) -> Answer:
    """POST /verify-email: use the token up, mark the address verified, continue."""
    params = await form_params(call)
    csrf.check(call.cookies, realm, params)
    data = await onetime.redeem(services, realm, onetime.VERIFY_EMAIL, params.get("token"))
    user = await onetime.link_user(services, realm, data)
    if user is None:
        return _invalid(call, services, realm)
    if not user.email_verified and _from_registrant(call.cookies, realm, data):
        # The browser that registered the account (and chose its password) proves the
        # mailbox: all that was set on the account was set by the owner.
        await services.durable.update_user(realm.name, user.id, email_verified=True)
        await services.audit(realm.name, EMAIL_VERIFIED, user_id=user.id, ip=call.ip,
                             via="verification_link", registrant_browser=True)
    elif not user.email_verified:
        # Whoever proves the address owns the account: the password set before (by whoever
        # registered it) no longer works, nor do the sessions, tokens and links made before.
        user = await address_proven(services, realm, user, via="verification_link", ip=call.ip)
        provider = password_provider(realm)
        if provider is not None and await services.accounts.password_hash(realm.name, user.id) is None:
            # The owner chooses the password now, on a form this proof opens (a reset token
            # for an account without one, bound to that absence like every reset token).
            token = await issue_reset_token(services, realm, user, flow_id=data.get("flow"))
            return set_password_form(call, services, realm, provider, token,
                                     notice=PASSWORD_NEXT.format(email=user.email))
    flow = await optional_flow(call, services, realm, data.get("flow"))
    if flow is not None:
        flow.data["notice"] = "email_verified"
        flow.data["login_hint"] = user.email
        await save_flow(services, realm, flow)
        session = await current_session(call.cookies, services, realm)
        return await continue_flow(call, services, realm, flow.data, session, flow=flow)
    return page(call, services, realm, "message.html", title="Your email address is verified",
                message=f"Thank you: {user.email} is verified. Return to the application to sign in.",
                **back_to_application(realm, data.get("client")))


async def resend_page(services: Services, realm: Realm, call: Call) -> Answer:
    """GET /verify-email/resend: ask for a new link."""
    password_provider_or_404(realm)
    flow = await optional_flow(call, services, realm, call.query.get("flow"))
    email = call.query.get("email", "")[:254]
    return page(call, services, realm, "resend.html", flow=flow, email=email)


async def resend(services: Services, realm: Realm, call: Call) -> Answer:
    """POST /verify-email/resend: the same answer whether or not the address has an
    unverified account; limited per address (`verification_resend_per_account`) and per IP."""
    password_provider_or_404(realm)
    params = await form_params(call)
    csrf.check(call.cookies, realm, params)
    flow = await optional_flow(call, services, realm, params.get("flow"))
    email = params.get("email", "").strip()
    if not valid_email(email):
        return page(call, services, realm, "resend.html", status=400, flow=flow, email=email,
                    error="Enter an email address like name@example.com.")
    limits = realm.config.rate_limits
    buckets = (("resend_ip", call.ip, limits.register_per_ip),
               ("resend_account", sha256_hex(email_identity(email)), limits.verification_resend_per_account))
    for bucket, subject, limit in buckets:
        wait = await hit(services, realm, bucket, subject, limit)
        if wait is not None:
            return too_many(call, services, realm, wait, "You asked for several links already. Check your inbox"
                            " (and spam folder), or wait a while before asking again.", flow=flow)
    # After the response, like /forgot-password: its timing must not tell whether the
    # address has an unverified account (issue 16 item 7).
    services.mail.background(_resend(services, realm, email, flow.id if flow else None, call.ip),
                             "verification resend")
    return page(call, services, realm, "check_email.html", flow=flow, email=email, resent=True,
                expires_in=human_duration(realm.config.lifetimes.email_verification))


async def _resend(services: Services, realm: Realm, email: str, flow_id: str | None, ip: str) -> None:
    user = await services.accounts.by_email(realm.name, email)
    if user is not None and not user.email_verified and not user.disabled:
        await send_verification(services, realm, user, flow_id=flow_id)
        await services.audit(realm.name, VERIFICATION_SENT, user_id=user.id, ip=ip)


def verification_required(realm: Realm, session: BrowserSession) -> bool:
    """Whether the provider the session signed in with demands a verified address (the
    password provider's `require_verified_email`, true by default); providers that have no
    such setting do not."""
    provider = realm.providers.get(session.provider)
    return isinstance(provider, PasswordCapability) and provider.require_verified_email is True


async def verify_first(call: Call, services: Services, realm: Realm, authz: dict[str, Any], user: User,
                       flow: Flow | None, cookies: CookieJar | None) -> Answer:
    """The page an unverified user gets instead of an authorization code: verify the
    address first, with a button that resends the link (`/verify-email/resend`). The
    pending request is kept, so the link (sent with this flow) continues it."""
    binding = CookieJar()
    if flow is None:
        flow = await start_flow(binding, call.cookies, services, realm, authz)
    elif flow.unsaved:
        await save_flow(services, realm, flow)
    result = page(call, services, realm, "verify_first.html", status=403, flow=flow, email=user.email)
    # a session started in this request; the flow's binding
    return result.with_cookies(cookies or ()).with_cookies(binding).with_headers({"Cache-Control": "no-store"})
