"""Self-registration (`/register`), when the realm's password provider says
`registration: true`: email, name and password; the account starts unverified and a
verification link is mailed.

Registration never reveals who has an account: an address that is taken gets the very
same page, after the same work (the password is hashed either way), and its owner is
mailed instead ("someone tried to sign up with your address": sign in, or reset the
password; plus a fresh verification link if the address was never verified). The
password policy is checked before the address is looked up, so its answer cannot differ
either. Limited per IP (`rate_limits.register_per_ip`); mail per address is limited too.
"""

from __future__ import annotations

from aiohttp import web

from engine.accounts import csrf
from engine.accounts.pages import (
    MAX_NAME,
    human_duration,
    optional_flow,
    page,
    password_provider_or_404,
    too_many,
    valid_email,
)
from engine.accounts.users import create_user, normalise_email
from engine.accounts.verification import send_verification, verification_link
from engine.oauth.params import form_params
from engine.oauth.ratelimit import client_ip, hit
from engine.realm import Realm
from engine.store.protocols import AlreadyExists
from engine.web.appkeys import SERVICES

USER_REGISTERED = "user_registered"
REGISTRATION_EXISTING_EMAIL = "registration_existing_email"


def _form(request: web.Request, realm: Realm, provider, *, flow, status: int = 200, values=None, errors=None):
    return page(request, realm, "register.html", status=status, flow=flow, values=values or {},
                errors=errors or {}, min_length=provider.settings.min_length,
                max_length=provider.settings.max_length)


async def register_page(request: web.Request, realm: Realm) -> web.Response:
    provider = password_provider_or_404(realm, registration=True)
    services = request.app[SERVICES]
    flow = await optional_flow(request, services, realm, request.query.get("flow"))
    hint = flow.data.get("login_hint") if flow else None
    return _form(request, realm, provider, flow=flow, values={"email": hint or ""})


async def register(request: web.Request, realm: Realm) -> web.Response:
    provider = password_provider_or_404(realm, registration=True)
    services = request.app[SERVICES]
    params = await form_params(request)
    csrf.check(request, realm, params)
    flow = await optional_flow(request, services, realm, params.get("flow"))
    ip = client_ip(request)
    wait = await hit(services, realm, "register_ip", ip, realm.config.rate_limits.register_per_ip)
    if wait is not None:
        return too_many(request, realm, wait, "Too many sign-ups from your network. Try again later.", flow=flow)

    email = normalise_email(params.get("email", ""))
    name = " ".join(params.get("name", "").split())
    password = params.get("password", "")
    errors: dict[str, str] = {}
    if not valid_email(email):
        errors["email"] = "Enter an email address like name@example.com."
    if not name:
        errors["name"] = "Enter your name."
    elif len(name) > MAX_NAME:
        errors["name"] = f"Use at most {MAX_NAME} characters."
    problem = provider.password_problem(password, email=email, name=name)
    if problem:
        errors["password"] = problem
    if errors:
        return _form(request, realm, provider, flow=flow, status=400, values={"email": email, "name": name},
                     errors=errors)

    flow_id = flow.id if flow else None
    existing = await services.accounts.by_email(realm.name, email)
    if existing is None:
        try:
            user = await create_user(services, realm, email=email, password=password, email_verified=False,
                                     profile={"name": name}, self_registered=True)
        except AlreadyExists:  # registered a moment ago by a concurrent request
            existing = await services.accounts.by_email(realm.name, email)
        else:
            await send_verification(services, realm, user, flow_id=flow_id)
            await services.audit(realm.name, USER_REGISTERED, user_id=user.id, ip=ip, provider=provider.settings.id)
    if existing is not None:
        await provider.hash_password(password)  # the same cost as creating the account
        link = None if existing.email_verified else await verification_link(services, realm, existing,
                                                                             flow_id=flow_id)
        await services.mail.send(
            realm, existing.email, "already_registered", name=existing.profile.get("name") or "",
            verify_link=link, forgot_link=f"{realm.issuer}/forgot-password",
            expires_in=human_duration(realm.config.lifetimes.email_verification),
        )
        await services.audit(realm.name, REGISTRATION_EXISTING_EMAIL, user_id=existing.id, ip=ip)
    return page(request, realm, "check_email.html", flow=flow, email=email, resent=False,
                expires_in=human_duration(realm.config.lifetimes.email_verification))
