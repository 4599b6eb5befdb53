"""Passkeys' routes (issue 20): thin adapters over engine.accounts.passkey_enrolment and
engine.accounts.passkey_sign_in, and the ceremony script, `{issuer}/static/passkeys.js`
(one small file of the engine's, served from every realm's own URL space so the pages'
`script-src 'self'` allows it)."""

from __future__ import annotations

from importlib.resources import files

from aiohttp import web

from engine.accounts import passkey_enrolment, passkey_sign_in
from engine.realm import Realm
from engine.web.adapter import adapt
from engine.web.routing import add_realm_route

SCRIPT = files("engine.web").joinpath("static/passkeys.js").read_bytes()
SCRIPT_HEADERS = {
    "Content-Type": "text/javascript; charset=utf-8",
    "Cache-Control": "public, max-age=3600",
    "X-Content-Type-Options": "nosniff",
}


async def script(request: web.Request, realm: Realm) -> web.Response:
    return web.Response(body=SCRIPT, headers=SCRIPT_HEADERS)


def add_passkey_routes(app: web.Application) -> None:
    path = passkey_enrolment.PATH
    add_realm_route(app, ["GET"], "/static/passkeys.js", script)
    add_realm_route(app, ["GET"], path, adapt(passkey_enrolment.passkeys_page), browser=True)
    add_realm_route(app, ["POST"], path, adapt(passkey_enrolment.add_passkey), browser=True)
    add_realm_route(app, ["POST"], f"{path}/options", adapt(passkey_enrolment.registration_options))
    add_realm_route(app, ["POST"], f"{path}/rename", adapt(passkey_enrolment.rename_passkey), browser=True)
    add_realm_route(app, ["POST"], f"{path}/remove", adapt(passkey_enrolment.remove_passkey), browser=True)
    # a sign-in: the first factor on the login page, the second on engine.accounts.mfa's page,
    # a passkey enrolled as the second factor the realm or the client requires
    add_realm_route(app, ["POST"], "/passkeys/sign-in/options", adapt(passkey_sign_in.sign_in_options))
    add_realm_route(app, ["POST"], "/passkeys/sign-in", adapt(passkey_sign_in.sign_in), browser=True)
    add_realm_route(app, ["POST"], "/passkeys/second-factor/options", adapt(passkey_sign_in.second_factor_options))
    add_realm_route(app, ["POST"], "/passkeys/second-factor", adapt(passkey_sign_in.second_factor), browser=True)
    add_realm_route(app, ["POST"], "/passkeys/enrol/options", adapt(passkey_enrolment.flow_registration_options))
    add_realm_route(app, ["POST"], "/passkeys/enrol", adapt(passkey_enrolment.flow_enrol), browser=True)
    add_realm_route(app, ["POST"], "/passkeys/enrol/continue", adapt(passkey_enrolment.flow_enrolled_continue),
                    browser=True)
