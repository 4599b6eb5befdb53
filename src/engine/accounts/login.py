"""The sign-in pages: `GET /login?flow=…` lists the realm's providers (credentials forms
and buttons for redirect providers); `POST /login/<provider>` checks what the user typed.

Every failure shows the same generic message (no user enumeration). Attempts are
rate-limited per client IP and per account, and guarded by brute-force protection
(engine.accounts.lockout: growing delays, then a temporary lockout), all counted in the
ephemeral store so every instance shares them. An attempt from a browser that signed in
to the account before (its device cookie) is limited and locked on its own instead, so
failures from elsewhere cannot lock the owner out; a successful sign-in renews that
cookie. When an account gets locked, its owner is mailed a reset link (after the
response, limited per recipient)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from engine import events
from engine.accounts import lockout
from engine.accounts.mfa import finish_first_factor
from engine.accounts.recovery import send_reset_link
from engine.errors import NotFound, RateLimited
from engine.exchange import Answer, Call, CookieJar
from engine.hookspecs import PasswordCapability
from engine.oauth.flows import load_flow, realm_base, save_flow
from engine.oauth.params import form_params
from engine.oauth.ratelimit import hit
from engine.providers import LoginFailed
from engine.realm import Realm
from engine.store.batch import WriteBatch
from engine.templates import render

if TYPE_CHECKING:
    from engine.services import Services
# The longest password a credentials provider without PasswordCapability is handed (the
# password provider's own `max_length` defaults to the same): no unbounded input to a hasher.
MAX_PASSWORD_LENGTH = 1024
GENERIC_FAILURE = "The email or password is not correct."
LOCKED = ("Too many failed sign-in attempts. For your security, signing in is paused for about"
          " {minutes} minute{s}. If you forgot your password, you can reset it now.")
NOTICES = {
    "email_verified": "Your email address is verified. Sign in to continue.",
    "password_changed": "Your password has been changed. Sign in with your new password.",
}


def max_password_length(provider: object) -> int:
    return provider.max_length if isinstance(provider, PasswordCapability) else MAX_PASSWORD_LENGTH


def _login_page(call: Call, services: Services, realm: Realm, flow, *, error: str | None = None, status: int = 200,
                login_hint: str | None = None, notice: str | None = None) -> Answer:
    client = realm.client(flow.data["client_id"])
    client_name = (client.name or client.client_id) if client is not None else "your account settings"
    providers = list(realm.providers.values())
    return render(
        realm, services, "login.html", status=status, flow=flow, error=error, notice=notice,
        base=realm_base(call, realm), client_name=client_name,
        credentials_providers=[p for p in providers if getattr(p, "kind", "") == "credentials"],
        redirect_providers=[p for p in providers if getattr(p, "kind", "") == "redirect"],
        login_hint=login_hint if login_hint is not None else flow.data.get("login_hint"),
    )


async def login_page(services: Services, realm: Realm, call: Call) -> Answer:
    flow = await load_flow(call.cookies, services, realm, call.query.get("flow"))
    notice = NOTICES.get(flow.data.pop("notice", None) or "")
    if notice:  # shown once
        await save_flow(services, realm, flow)
    return _login_page(call, services, realm, flow, notice=notice)


def _locked_page(call: Call, services: Services, realm: Realm, flow, email: str, retry_after: int) -> Answer:
    minutes = max(1, -(-retry_after // 60))
    page = _login_page(call, services, realm, flow, status=429, login_hint=email,
                       error=LOCKED.format(minutes=minutes, s="s" if minutes != 1 else ""))
    return page.with_headers({"Retry-After": str(retry_after)})


async def credentials_login(services: Services, realm: Realm, call: Call) -> Answer:
    provider_id = call.route["provider"]
    provider = realm.providers.get(provider_id)
    if provider is None or getattr(provider, "kind", "") != "credentials":
        raise NotFound("no such sign-in method")
    params = await form_params(call)
    flow = await load_flow(call.cookies, services, realm, params.get("flow"),
                           csrf=params.get("csrf"), check_csrf=True)
    email = params.get("email", "").strip()
    password = params.get("password", "")
    ip = call.ip
    client_id = flow.data["client_id"]
    limits = realm.config.rate_limits
    device_cookie = call.cookies.get(lockout.device_cookie_name(realm))
    device = await lockout.trusted_device(services, realm, device_cookie, email) if email else None
    if device is None:
        wait = await hit(services, realm, "login_ip", ip, limits.login_per_ip)
        account_wait = await hit(services, realm, "login_account", lockout.account_key(email),
                                 limits.login_per_account)
        wait = max(wait or 0, account_wait or 0) or None
    else:  # a browser the owner signed in from: its own budget, not the account's or the IP's
        wait = await hit(services, realm, "login_device", device, limits.login_per_account)
    if not email or not password or len(password) > max_password_length(provider):
        if wait is not None:
            raise RateLimited(wait, "too many sign-in attempts; wait a moment and try again")
        return _login_page(call, services, realm, flow, error=GENERIC_FAILURE, status=400, login_hint=email)
    try:
        if wait is not None:
            # A locked account gets the lockout page (with the reset link) even when the
            # plain rate limit would also refuse the request.
            await lockout.check(services, realm, email=email, ip=ip, device=device)
            raise RateLimited(wait, "too many sign-in attempts; wait a moment and try again")
        attempt = await lockout.begin(services, realm, email=email, ip=ip, device=device)
    except lockout.Locked as locked:
        await services.audit(realm.name, events.LOGIN_FAILED, ip=ip, client_id=client_id, provider=provider_id,
                             reason="locked")
        return _locked_page(call, services, realm, flow, email, locked.retry_after)
    try:
        identity = await provider.login(email, password)
    except LoginFailed:
        # Looked up on every failure, known or unknown address: the same cost either way.
        user = await services.accounts.by_email(realm.name, email)
        user_id = user.id if user else None
        await services.audit(realm.name, events.LOGIN_FAILED, user_id=user_id, ip=ip, client_id=client_id,
                             provider=provider_id, reason="credentials", attempt=attempt.account_attempts)
        locked = await lockout.failed(services, realm, attempt, user_id=user_id, client_id=client_id)
        if "account" in locked and user is not None and not user.disabled:
            # The owner learns of it and gets a way in that always works (after the
            # response: its timing must not tell that the address has an account).
            services.mail.background(send_reset_link(
                services, realm, user, template="account_locked", failures=attempt.account_attempts),
                "lockout notice")
        return _login_page(call, services, realm, flow, error=GENERIC_FAILURE, status=400, login_hint=email)
    writes = WriteBatch(services.ephemeral)  # stored with the code, in one round trip
    lockout.succeeded(realm, attempt, writes)
    cookies = CookieJar()
    lockout.set_device_cookie(cookies, services, realm, lockout.trust_browser(
        services, realm, device_cookie, email, writes, replaces=attempt.device))
    await services.audit(realm.name, events.LOGIN, user_id=identity.user_id, ip=ip,
                         client_id=client_id, provider=provider_id)
    # The session starts now, or after a second factor (engine.accounts.mfa).
    return await finish_first_factor(services, realm, call, flow, identity.user_id, amr=["pwd"],
                                     provider=provider_id, writes=writes, cookies=cookies, user=identity.user)


def login_page_with_error(call: Call, services: Services, realm: Realm, flow, error: str) -> Answer:
    """The sign-in page again with `error` (400): another sign-in method failed (a passkey)."""
    return _login_page(call, services, realm, flow, error=error, status=400)
