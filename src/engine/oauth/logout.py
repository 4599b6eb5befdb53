"""OpenID Connect RP-Initiated Logout 1.0: end the browser session and revoke the refresh
tokens issued in it; redirect to `post_logout_redirect_uri` only if it is registered for
the client (named by `id_token_hint` or `client_id`), with `state` echoed.

Without a valid `id_token_hint` the user is asked to confirm (§2: the OP SHOULD ask), so
a third-party page cannot sign users out by linking here."""

from __future__ import annotations

import hmac
from urllib.parse import urlencode

from aiohttp import web

from engine import events
from engine.accounts.sessions import BrowserSession, current_session, end_session
from engine.errors import InvalidRequest, InvalidToken
from engine.oauth.authorize import realm_base, see_other
from engine.oauth.params import form_params
from engine.realm import Realm
from engine.secrets_util import sha256_hex
from engine.web.appkeys import SERVICES
from engine.web.templates import render

CARRIED = ("post_logout_redirect_uri", "state", "client_id")


def _csrf(session: BrowserSession) -> str:
    return sha256_hex("logout\0" + session.key)[:32]


async def logout(request: web.Request, realm: Realm) -> web.StreamResponse:
    services = request.app[SERVICES]
    params = await form_params(request, query=True)
    hint_claims = None
    if hint := params.get("id_token_hint"):
        try:
            # An expired ID token is still a good hint of who is logging out (§2).
            hint_claims = await services.tokens.verify_signed(realm, hint, check_exp=False)
        except InvalidToken:
            raise InvalidRequest("id_token_hint is not an ID token issued by this realm") from None
    client_id = params.get("client_id")
    if hint_claims is not None:
        aud = hint_claims.get("aud")
        audiences = aud if isinstance(aud, list) else [aud]
        if client_id is not None and client_id not in audiences:
            raise InvalidRequest("client_id does not match the id_token_hint")
        client_id = client_id or hint_claims.get("azp") or audiences[0]
    redirect_to = params.get("post_logout_redirect_uri")
    if redirect_to is not None:
        client = realm.client(client_id)
        if client is None:
            raise InvalidRequest("post_logout_redirect_uri needs id_token_hint or client_id")
        if redirect_to not in client.post_logout_redirect_uris:
            raise InvalidRequest("post_logout_redirect_uri is not registered for this client")

    session = await current_session(request, services, realm)
    confirmed = hint_claims is not None and (session is None or hint_claims.get("sub") == session.user_id)
    if session is not None and not confirmed:
        posted = request.method == "POST" and params.get("confirm") == "yes"
        if not (posted and hmac.compare_digest(params.get("csrf", ""), _csrf(session))):
            carry = {k: params[k] for k in CARRIED if k in params}
            return render(request, realm, services, "logout.html", signed_out=False, csrf=_csrf(session),
                          carry=carry, base=realm_base(request, realm))

    if redirect_to is not None:
        location = redirect_to
        if "state" in params:
            location += ("&" if "?" in redirect_to else "?") + urlencode({"state": params["state"]})
        response: web.Response = see_other(location)
    else:
        response = render(request, realm, services, "logout.html", signed_out=True, base=realm_base(request, realm))
    if session is not None:
        await end_session(response, services, realm, session)
        revoked = await services.durable.revoke_families(
            realm.name, services.clock.now(), "logout", session_id=session.sid
        )
        await services.tokens.deny_session(realm, session.sid)  # and the session's access tokens
        await services.audit(realm.name, events.LOGOUT, user_id=session.user_id, client_id=client_id,
                             families_revoked=revoked)
    return response
