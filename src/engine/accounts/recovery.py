"""Password reset (`/forgot-password`, `/reset-password`).

- Asking for a link gives the same page whether or not the address has an account (the
  mail goes out in the background, so the timing does not differ either); limited per IP
  (`rate_limits.password_reset_per_ip`) and per recipient (`mail_per_recipient`).
- The link's token is single-use, expires after `lifetimes.password_reset` (1 h by
  default), is stored only as a SHA-256 hash, and is bound to the password it replaces:
  once the password changes, every other outstanding link is dead.
- A reset sets the new password (policy-checked), marks the address verified (the link
  proved the mailbox: on an account nobody had proven, the password and federated links
  set before are removed first, engine.accounts.proof), ends every browser session of the user
  (engine.accounts.sessions.end_user_sessions), revokes every refresh-token family,
  lifts a sign-in lockout, and mails the owner a notice.
"""

from __future__ import annotations

import hmac
from typing import TYPE_CHECKING, Any

from engine.accounts import csrf, lockout, onetime
from engine.accounts.emails import parse_email
from engine.accounts.mfa import forget_devices
from engine.accounts.pages import (
    human_duration,
    optional_flow,
    page,
    password_provider_or_404,
    too_many,
)
from engine.accounts.proof import address_proven
from engine.accounts.sessions import end_user_sessions
from engine.exchange import Answer, Call, CookieJar
from engine.hookspecs import PasswordCapability
from engine.oauth.authorize import continue_flow
from engine.oauth.flows import back_to_application, flow_client, save_flow
from engine.oauth.params import form_params
from engine.oauth.ratelimit import hit
from engine.realm import Realm
from engine.secrets_util import sha256_hex
from engine.store.protocols import User

if TYPE_CHECKING:
    from engine.services import Services

PASSWORD_RESET_REQUESTED = "password_reset_requested"
PASSWORD_RESET = "password_reset"


def _fingerprint(stored_hash: str | None) -> str:
    """Identifies the password a link may replace, without revealing anything about it."""
    return sha256_hex("tessera reset\0" + (stored_hash or ""))[:32]


async def forgot_page(services: Services, realm: Realm, call: Call) -> Answer:
    password_provider_or_404(realm)
    flow = await optional_flow(call, services, realm, call.query.get("flow"))
    email = (flow.data.get("login_hint") if flow else None) or call.query.get("email", "")
    return page(call, services, realm, "forgot_password.html", flow=flow, email=email[:254])


async def forgot(services: Services, realm: Realm, call: Call) -> Answer:
    """POST /forgot-password: the answer is the same page, produced in the same time,
    whether or not the address has an account: everything that depends on the account
    (the lookup, the token, the mail, the audit event) runs after the response
    (`services.mail.background`, issue 16 item 7)."""
    password_provider_or_404(realm)
    params = await form_params(call)
    csrf.check(call.cookies, realm, params)
    flow = await optional_flow(call, services, realm, params.get("flow"))
    ip = call.ip
    email = parse_email(params.get("email", ""))
    if email is None:
        return page(call, services, realm, "forgot_password.html", status=400, flow=flow,
                    email=params.get("email", "").strip()[:254],
                    error="Enter an email address like name@example.com.")
    wait = await hit(services, realm, "forgot_ip", ip, realm.config.rate_limits.password_reset_per_ip)
    if wait is not None:
        return too_many(call, services, realm, wait, "Too many requests from your network. Try again later.", flow=flow)
    services.mail.background(_mail_reset_link(services, realm, email, ip=ip, flow_id=flow.id if flow else None),
                             "password reset request")
    lifetime = realm.config.lifetimes.password_reset
    return page(call, services, realm, "forgot_done.html", flow=flow, email=email, expires_in=human_duration(lifetime))


async def _mail_reset_link(services: Services, realm: Realm, email: str, *, ip: str, flow_id: str | None) -> None:
    user = await services.accounts.by_email(realm.name, email)
    if user is not None and not user.disabled:
        await send_reset_link(services, realm, user, flow_id=flow_id)
    await services.audit(realm.name, PASSWORD_RESET_REQUESTED, user_id=user.id if user else None, ip=ip)


async def send_reset_link(services: Services, realm: Realm, user: User, *, flow_id: str | None = None,
                          template: str = "reset_password", **context: Any) -> bool:
    """Issue a reset link for `user` and mail it (`template`: the request's own mail, or
    the lockout notice of engine.accounts.lockout). Limited per recipient."""
    lifetime = realm.config.lifetimes.password_reset
    stored = await services.accounts.password_hash(realm.name, user.id)
    token = await onetime.issue(services, realm, onetime.RESET_PASSWORD, {
        "user_id": user.id, "email": (user.email or "").lower(), "password": _fingerprint(stored),
        "flow": flow_id, "client": await flow_client(services, realm, flow_id),
    }, lifetime)
    # No `name`: the address may be unproven, and the name is whatever the registrant typed.
    return await services.mail.send(realm, user.email, template, link=f"{realm.issuer}/reset-password?token={token}",
                                    expires_in=human_duration(lifetime), **context)


async def _check_token(services: Services, realm: Realm, data: dict[str, Any] | None) -> User | None:
    """The user whose password the link may replace, if the link is still good for it."""
    user = await onetime.link_user(services, realm, data)
    if user is None:
        return None
    current = _fingerprint(await services.accounts.password_hash(realm.name, user.id))
    if not hmac.compare_digest(current, data.get("password", "")):
        return None  # the password changed since the link was sent
    return user


async def issue_reset_token(services: Services, realm: Realm, user: User, *, flow_id: str | None) -> str:
    """A reset token for `user`'s current password (or its absence), handed out by a page
    that has just proven the mailbox (the verification link), not mailed."""
    stored = await services.accounts.password_hash(realm.name, user.id)
    return await onetime.issue(services, realm, onetime.RESET_PASSWORD, {
        "user_id": user.id, "email": (user.email or "").lower(), "password": _fingerprint(stored),
        "flow": flow_id,
    }, realm.config.lifetimes.password_reset)


def _invalid(call: Call, services: Services, realm: Realm) -> Answer:
    return page(call, services, realm, "link_invalid.html", status=400, kind="reset")


def set_password_form(call: Call, services: Services, realm: Realm, provider: PasswordCapability, token: str, *,
                      status: int = 200, error: str | None = None, notice: str | None = None) -> Answer:
    return page(call, services, realm, "reset_password.html", status=status, token=token, error=error,
                notice=notice, min_length=provider.min_length, max_length=provider.max_length)



async def reset_page(services: Services, realm: Realm, call: Call) -> Answer:
    """GET /reset-password?token=…: the new-password form (the token is not used up yet)."""
    provider = password_provider_or_404(realm)
    token = call.query.get("token", "")
    if await _check_token(services, realm, await onetime.peek(services, realm, onetime.RESET_PASSWORD, token)) is None:
        return _invalid(call, services, realm)
    return set_password_form(call, services, realm, provider, token)


async def reset(services: Services, realm: Realm, call: Call) -> Answer:
    """POST /reset-password: check the new password, use the token up, end everything."""
    provider = password_provider_or_404(realm)
    params = await form_params(call)
    csrf.check(call.cookies, realm, params)
    token = params.get("token", "")
    user = await _check_token(services, realm, await onetime.peek(services, realm, onetime.RESET_PASSWORD, token))
    if user is None:
        return _invalid(call, services, realm)
    password = params.get("password", "")
    if password != params.get("password_confirm", ""):
        return set_password_form(call, services, realm, provider, token, status=400,
                                 error="The two passwords are not the same.")
    problem = provider.password_problem(password, email=user.email, name=user.profile.get("name"))
    if problem:
        return set_password_form(call, services, realm, provider, token, status=400, error=problem)
    data = await onetime.redeem(services, realm, onetime.RESET_PASSWORD, token)
    if await _check_token(services, realm, data) is None:  # used by a concurrent request
        return _invalid(call, services, realm)

    ip = call.ip
    # The link proved the mailbox: on an account nobody had proven, the password, links and
    # sessions set before by whoever made it are removed first (engine.accounts.proof).
    await address_proven(services, realm, user, via="reset_link", ip=ip)
    await services.accounts.set_password_hash(realm.name, user.id, await provider.hash_password(password))
    await end_user_sessions(services, realm, user.id)
    revoked = await services.durable.revoke_families(realm.name, services.clock.now(), "password_reset",
                                                     user_id=user.id)
    await lockout.clear_account(services, realm, user.email or "")
    await lockout.end_trust(services, realm, user.email or "")  # devices trusted before the reset
    await forget_devices(services, realm, user.id)  # and browsers that skipped the second factor
    await services.audit(realm.name, PASSWORD_RESET, user_id=user.id, ip=ip, families_revoked=revoked)
    await services.mail.send(realm, user.email, "password_changed", limited=False,
                             name=user.profile.get("name") or "", ip=ip,
                             at=services.clock.now().strftime("%Y-%m-%d %H:%M UTC"),
                             forgot_link=f"{realm.issuer}/forgot-password")

    flow = await optional_flow(call, services, realm, data.get("flow") if data else None)
    if flow is not None:
        flow.data["notice"] = "password_changed"
        flow.data["login_hint"] = user.email
        await save_flow(services, realm, flow)
        answer = await continue_flow(call, services, realm, flow.data, None, flow=flow)
    else:
        answer = page(call, services, realm, "message.html", title="Your password has been changed",
                      message="You have been signed out everywhere. Return to the application and sign in"
                              " with your new password.",
                      **back_to_application(realm, data.get("client") if data else None))
    device = CookieJar()
    await lockout.trust_after_proof(call.cookies, device, services, realm, user.email or "")  # issue 16 item 5
    return answer.with_cookies(device)
