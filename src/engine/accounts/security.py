"""`{issuer}/account/security`: the user's second factors (issue 20), behind the SSO session.

A session whose authentication is older than `REAUTHENTICATE_AFTER` (or no session) is
sent to sign in again first: a flow with no client (`account` in its data names where to
come back) goes through the usual login page and second factor, and ends back here
(engine.oauth.authorize). Every form carries the account pages' CSRF token
(engine.accounts.csrf) and is checked against a recent authentication again.

- TOTP: enrol (QR code and the secret as text; a first code confirms it, ±1 step), remove.
- Recovery codes: how many are left; regenerate (the old set is gone; the new one is shown
  once). Enrolling the first factor makes a set too.
- Passkeys: the section engine.accounts.passkeys renders (`passkeys_account.html`).

Removing the last factor of a realm that requires one is refused (`may_remove`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from engine import events
from engine.accounts import csrf, mfa, recovery_codes, totp
from engine.accounts.pages import page
from engine.accounts.sessions import BrowserSession, current_session
from engine.errors import RateLimited
from engine.exchange import Answer, Call, CookieJar
from engine.oauth.flows import realm_base, start_flow
from engine.oauth.params import form_params
from engine.oauth.ratelimit import hit
from engine.realm import Realm
from engine.secrets_util import sha256_hex

if TYPE_CHECKING:
    from engine.services import Services

PATH = "/account/security"
REAUTHENTICATE_AFTER = 300  # seconds since the session's authentication
ENROL_SECRET_TTL = 600
NOTICES = {
    "totp_enrolled": "Your authenticator app is set up.",
    "totp_removed": "Your authenticator app was removed.",
    "last_factor": "This is your last second factor, and this service requires one: add another first.",
}


def _url(call: Call, realm: Realm, suffix: str = "") -> str:
    return f"{realm_base(call, realm)}{PATH}{suffix}"


async def _recent_session(services: Services, realm: Realm, call: Call) -> BrowserSession | None:
    session = await current_session(call.cookies, services, realm)
    if session is None or services.clock.timestamp() - session.auth_time > REAUTHENTICATE_AFTER:
        return None
    return session


async def _sign_in_again(services: Services, realm: Realm, call: Call) -> Answer:
    """A flow with no client that comes back to the account page after a fresh sign-in."""
    jar = CookieJar()
    authz: dict[str, Any] = {
        "client_id": None, "redirect_uri": None, "redirect_uri_sent": False, "state": None, "scope": "openid",
        "nonce": None, "code_challenge": None, "prompt": ["login"], "max_age": None, "login_hint": None,
        "resource": None, "acr_mfa": False, "account": _url(call, realm),
    }
    flow = await start_flow(jar, call.cookies, services, realm, authz)
    return Answer.see_other(f"{realm_base(call, realm)}/login?flow={flow.id}", jar)


def _enrol_key(realm: Realm, session: BrowserSession) -> str:
    return f"{realm.name}:mfa-account-totp:{sha256_hex(session.key)}"


async def may_remove(services: Services, realm: Realm, user_id: str, *, totp_factor: bool = False,
                     passkeys: int = 0) -> bool:
    """Whether the user may remove these factors (the TOTP factor, `passkeys` passkeys):
    not the last one in a realm that requires a second factor."""
    if not realm.config.mfa.required:
        return True
    factors = await mfa.factors_of(services, realm, user_id)
    left = (factors.totp and not totp_factor) + max(0, factors.passkeys - passkeys)
    return left > 0


async def security_page(services: Services, realm: Realm, call: Call) -> Answer:
    session = await _recent_session(services, realm, call)
    if session is None:
        return await _sign_in_again(services, realm, call)
    return await _security(call, services, realm, session, notice=NOTICES.get(call.query.get("notice", "")))


async def _security(call: Call, services: Services, realm: Realm, session: BrowserSession, *,
                    notice: str | None = None, status: int = 200, **context: Any) -> Answer:
    user = await services.durable.get_user(realm.name, session.user_id)
    factors = await mfa.factors_of(services, realm, session.user_id, codes=True)
    if realm.config.mfa.passkeys != "off":
        context.setdefault("passkeys", await services.durable.list_passkeys(realm.name, session.user_id))
    return page(call, services, realm, "account_security.html", status=status, user=user, factors=factors,
                policy=realm.config.mfa, notice=notice, **context)


async def _checked(services: Services, realm: Realm, call: Call) -> tuple[BrowserSession | None, dict[str, str]]:
    params = await form_params(call)
    csrf.check(call.cookies, realm, params)
    session = await _recent_session(services, realm, call)
    if session is not None:
        wait = await hit(services, realm, "account_security", session.user_id,
                         realm.config.rate_limits.login_per_account)
        if wait is not None:
            raise RateLimited(wait, "too many changes; wait a moment and try again")
    return session, params


async def totp_page(services: Services, realm: Realm, call: Call) -> Answer:
    """`GET /account/security/totp`: a new secret to scan and confirm."""
    session = await _recent_session(services, realm, call)
    if session is None:
        return await _sign_in_again(services, realm, call)
    return await _totp_form(call, services, realm, session)


async def _totp_form(call: Call, services: Services, realm: Realm, session: BrowserSession, *,
                     error: str | None = None, status: int = 200) -> Answer:
    if realm.config.mfa.totp == "off":
        return Answer.see_other(_url(call, realm))
    key = _enrol_key(realm, session)
    stored = await services.ephemeral.get(key)
    if stored is not None:
        secret = totp.unseal(services, realm, session.user_id, bytes.fromhex(stored["sealed"]))
    else:
        secret = totp.new_secret()
        await services.ephemeral.put(key, {"sealed": totp.seal(services, realm, session.user_id, secret).hex()},
                                     ENROL_SECRET_TTL)
    user = await services.durable.get_user(realm.name, session.user_id)
    uri = totp.provisioning_uri(secret, (user.email if user and user.email else session.user_id),
                                realm.display_name or realm.name)
    return page(call, services, realm, "account_totp.html", status=status, error=error, totp_secret=secret,
                totp_qr=totp.qr_svg(uri))


async def totp_enrol(services: Services, realm: Realm, call: Call) -> Answer:
    """`POST /account/security/totp`: the first code confirms the secret shown."""
    session, params = await _checked(services, realm, call)
    if session is None:
        return await _sign_in_again(services, realm, call)
    stored = await services.ephemeral.get(_enrol_key(realm, session))
    if stored is None or realm.config.mfa.totp == "off":
        return Answer.see_other(_url(call, realm, "/totp"))
    secret = totp.unseal(services, realm, session.user_id, bytes.fromhex(stored["sealed"]))
    if not await totp.enrol(services, realm, session.user_id, secret, params.get("code", "")[:64]):
        return await _totp_form(call, services, realm, session, status=400,
                                error="That code is not correct. Scan the QR code again and enter the code shown.")
    await services.ephemeral.delete(_enrol_key(realm, session))
    await services.audit(realm.name, events.TOTP_ENROLLED, user_id=session.user_id, ip=call.ip)
    codes = await codes_for_a_first_factor(call, services, realm, session, notice=NOTICES["totp_enrolled"])
    return codes or Answer.see_other(_url(call, realm, "?notice=totp_enrolled"))


async def totp_remove(services: Services, realm: Realm, call: Call) -> Answer:
    session, _ = await _checked(services, realm, call)
    if session is None:
        return await _sign_in_again(services, realm, call)
    if not await may_remove(services, realm, session.user_id, totp_factor=True):
        return await _security(call, services, realm, session, status=409, error=NOTICES["last_factor"])
    if await services.durable.delete_totp(realm.name, session.user_id):
        await mfa.forget_devices(services, realm, session.user_id)
        if not (await mfa.factors_of(services, realm, session.user_id)).any:
            # no second factor left: recovery codes would be a way around nothing
            await services.durable.delete_recovery_codes(realm.name, session.user_id)
        await services.audit(realm.name, events.TOTP_REMOVED, user_id=session.user_id, ip=call.ip)
    return Answer.see_other(_url(call, realm, "?notice=totp_removed"))


async def regenerate_codes(services: Services, realm: Realm, call: Call) -> Answer:
    """`POST /account/security/recovery-codes`: a new set, shown once."""
    session, _ = await _checked(services, realm, call)
    if session is None:
        return await _sign_in_again(services, realm, call)
    if realm.config.mfa.recovery_codes <= 0 or not (await mfa.factors_of(services, realm, session.user_id)).any:
        return Answer.see_other(_url(call, realm))
    return await _show_codes(call, services, realm, session)


async def codes_for_a_first_factor(call: Call, services: Services, realm: Realm, session: BrowserSession, *,
                                   notice: str) -> Answer | None:
    """After a second factor was added (an authenticator app here, a passkey in
    engine.accounts.passkey_enrolment): the recovery codes page, shown once, if the realm
    gives codes and the account has none yet; None otherwise."""
    if realm.config.mfa.recovery_codes > 0 and \
            await services.durable.count_recovery_codes(realm.name, session.user_id) == 0:
        return await _show_codes(call, services, realm, session, notice=notice)
    return None


async def _show_codes(call: Call, services: Services, realm: Realm, session: BrowserSession, *,
                      notice: str | None = None) -> Answer:
    codes = await recovery_codes.regenerate(services, realm, session.user_id)
    await services.audit(realm.name, events.RECOVERY_CODES_GENERATED, user_id=session.user_id, ip=call.ip,
                         count=len(codes))
    return page(call, services, realm, "account_recovery_codes.html", codes=codes, notice=notice,
                back=_url(call, realm))
