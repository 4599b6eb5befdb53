"""The browser flows (authorization, sign-in, federation, consent, logout, the account
pages) as aiohttp handlers: thin adapters over the protocol core (engine.oauth,
engine.accounts), which answers from the realm and the request's data alone
(engine.exchange). Errors propagate to the one middleware, which renders them as pages on
these routes."""

from __future__ import annotations

from aiohttp import web

from engine.accounts import federation, login, mfa_pages, recovery, registration, security, verification
from engine.oauth import authorize as authorize_core
from engine.oauth import consent
from engine.oauth.logout import logout as logout_core
from engine.web.adapter import adapt
from engine.web.routing import add_realm_route

authorize = adapt(authorize_core.authorize)
resume = adapt(authorize_core.resume)
login_page = adapt(login.login_page)
credentials_login = adapt(login.credentials_login)
consent_page = adapt(consent.consent_page)
consent_decision = adapt(consent.consent_decision)
logout = adapt(logout_core)
register_page = adapt(registration.register_page)
register_account = adapt(registration.register)
verify_page = adapt(verification.verify_page)
verify = adapt(verification.verify)
resend_page = adapt(verification.resend_page)
resend = adapt(verification.resend)
forgot_page = adapt(recovery.forgot_page)
forgot = adapt(recovery.forgot)
reset_page = adapt(recovery.reset_page)
reset = adapt(recovery.reset)
federated_start = adapt(federation.federated_start)
seed_start = adapt(federation.seed_start)
federated_callback = adapt(federation.federated_callback)
second_factor_page = adapt(mfa_pages.second_factor_page)
second_factor = adapt(mfa_pages.second_factor)
mfa_enrol_page = adapt(mfa_pages.enrol_page)
mfa_enrol = adapt(mfa_pages.enrol)
mfa_continue = adapt(mfa_pages.enrolled_continue)
security_page = adapt(security.security_page)
security_totp_page = adapt(security.totp_page)
security_totp_enrol = adapt(security.totp_enrol)
security_totp_remove = adapt(security.totp_remove)
security_codes = adapt(security.regenerate_codes)


def add_mfa_routes(app: web.Application) -> None:
    """The second-factor pages of a sign-in (issue 20)."""
    add_realm_route(app, ["GET"], "/mfa", second_factor_page, browser=True)
    add_realm_route(app, ["POST"], "/mfa", second_factor, browser=True)
    add_realm_route(app, ["GET"], "/mfa/enrol", mfa_enrol_page, browser=True)
    add_realm_route(app, ["POST"], "/mfa/enrol", mfa_enrol, browser=True)
    add_realm_route(app, ["POST"], "/mfa/continue", mfa_continue, browser=True)
    add_realm_route(app, ["GET"], security.PATH, security_page, browser=True)
    add_realm_route(app, ["GET"], f"{security.PATH}/totp", security_totp_page, browser=True)
    add_realm_route(app, ["POST"], f"{security.PATH}/totp", security_totp_enrol, browser=True)
    add_realm_route(app, ["POST"], f"{security.PATH}/totp/remove", security_totp_remove, browser=True)
    add_realm_route(app, ["POST"], f"{security.PATH}/recovery-codes", security_codes, browser=True)


def add_federation_routes(app: web.Application) -> None:
    add_realm_route(app, ["GET"], "/login/{provider}", federated_start, browser=True)
    add_realm_route(app, ["GET"], "/login/{provider}/callback", federated_callback, browser=True)
    add_realm_route(app, ["GET"], "/oauth/{provider}", seed_start, browser=True)
    add_realm_route(app, ["GET"], "/oauth/callback/{provider}", federated_callback, browser=True)
