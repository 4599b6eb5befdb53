"""Self-registration (`/register`), when the realm's password provider says
`registration: true`: email, name and password; the account starts unverified and a
verification link is mailed.

Registration never reveals who has an account: an address that is taken gets the very
same page, after the same work (the password is hashed either way), and its owner is
mailed instead ("someone tried to sign up with your address": sign in, or reset the
password; plus a fresh verification link if the address was never verified). The
password policy is checked before the address is looked up, so its answer cannot differ
either; the password is hashed on both paths, and the lookup, the account and the mail
come after the response (`services.mail.background`), so neither the answer nor its
timing tells whether the address was taken (issue 16 item 7). Limited per IP
(`rate_limits.register_per_ip`); mail per address is limited too.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from engine.accounts import csrf
from engine.accounts.emails import parse_email
from engine.accounts.pages import (
    MAX_NAME,
    human_duration,
    optional_flow,
    page,
    password_provider_or_404,
    too_many,
)
from engine.accounts.users import create_user
from engine.accounts.verification import send_verification, set_registrant_cookie, verification_link
from engine.exchange import Answer, Call, CookieJar
from engine.hookspecs import PasswordCapability
from engine.oauth.params import form_params
from engine.oauth.ratelimit import hit
from engine.realm import Realm
from engine.secrets_util import random_token, sha256_hex
from engine.store.protocols import AlreadyExists

if TYPE_CHECKING:
    from engine.services import Services

USER_REGISTERED = "user_registered"
REGISTRATION_EXISTING_EMAIL = "registration_existing_email"


def _form(call: Call, services: Services, realm: Realm, provider: PasswordCapability, *, flow, status: int = 200,
          values=None, errors=None):
    return page(call, services, realm, "register.html", status=status, flow=flow, values=values or {},
                errors=errors or {}, min_length=provider.min_length,
                max_length=provider.max_length)


async def register_page(services: Services, realm: Realm, call: Call) -> Answer:
    provider = password_provider_or_404(realm, registration=True)
    flow = await optional_flow(call, services, realm, call.query.get("flow"))
    hint = flow.data.get("login_hint") if flow else None
    return _form(call, services, realm, provider, flow=flow, values={"email": hint or ""})


async def register(services: Services, realm: Realm, call: Call) -> Answer:
    provider = password_provider_or_404(realm, registration=True)
    params = await form_params(call)
    csrf.check(call.cookies, realm, params)
    flow = await optional_flow(call, services, realm, params.get("flow"))
    ip = call.ip
    wait = await hit(services, realm, "register_ip", ip, realm.config.rate_limits.register_per_ip)
    if wait is not None:
        return too_many(call, services, realm, wait, "Too many sign-ups from your network. Try again later.", flow=flow)

    typed_email = params.get("email", "")
    email = parse_email(typed_email)
    name = " ".join(params.get("name", "").split())
    password = params.get("password", "")
    errors: dict[str, str] = {}
    if email is None:
        errors["email"] = "Enter an email address like name@example.com."
    if not name:
        errors["name"] = "Enter your name."
    elif len(name) > MAX_NAME:
        errors["name"] = f"Use at most {MAX_NAME} characters."
    problem = provider.password_problem(password, email=email or typed_email, name=name)
    if problem:
        errors["password"] = problem
    if errors or email is None:
        return _form(call, services, realm, provider, flow=flow, status=400,
                     values={"email": email or typed_email.strip()[:254], "name": name}, errors=errors)

    # The same work for a new and a taken address: the password is hashed here (a taken
    # address pays for it too), and what depends on the account runs after the response.
    password_hash = await provider.hash_password(password)
    # This browser may prove the address without losing the password it chose here
    # (engine.accounts.verification): set on both paths alike.
    registrant = random_token(24)
    services.mail.background(
        _register_or_notify(services, realm, provider, email=email, name=name, password_hash=password_hash,
                            ip=ip, flow_id=flow.id if flow else None, registrant=sha256_hex(registrant)),
        "registration")
    answer = page(call, services, realm, "check_email.html", flow=flow, email=email, resent=False,
                  expires_in=human_duration(realm.config.lifetimes.email_verification))
    cookies = CookieJar()
    set_registrant_cookie(cookies, services, realm, registrant)
    return answer.with_cookies(cookies)


async def _register_or_notify(services: Services, realm: Realm, provider: PasswordCapability, *, email: str, name: str,
                              password_hash: str, ip: str, flow_id: str | None, registrant: str) -> None:
    """Create the account and mail its verification link, or mail the owner of the taken
    address (after the response: `register`)."""
    existing = await services.accounts.by_email(realm.name, email)
    if existing is None:
        try:
            user = await create_user(services, realm, email=email, password_hash=password_hash,
                                     email_verified=False, profile={"name": name}, self_registered=True)
        except AlreadyExists:  # registered a moment ago by a concurrent request
            existing = await services.accounts.by_email(realm.name, email)
        else:
            await send_verification(services, realm, user, flow_id=flow_id, registrant=registrant)
            await services.audit(realm.name, USER_REGISTERED, user_id=user.id, ip=ip, provider=provider.settings.id)
    if existing is not None:
        link = None if existing.email_verified else await verification_link(services, realm, existing,
                                                                             flow_id=flow_id)
        # Nothing the registrant typed goes into this mail (issue 23 item 10): it is sent
        # to an address the registrant has not proven.
        await services.mail.send(
            realm, existing.email, "already_registered",
            verify_link=link, forgot_link=f"{realm.issuer}/forgot-password",
            expires_in=human_duration(realm.config.lifetimes.email_verification),
        )
        await services.audit(realm.name, REGISTRATION_EXISTING_EMAIL, user_id=existing.id, ip=ip)
