"""OpenID Connect RP-Initiated Logout 1.0: end the browser session and revoke the refresh
tokens issued in it; redirect to `post_logout_redirect_uri` only if it is registered for
the client (named by `id_token_hint` or `client_id`), with `state` echoed.

Without a valid `id_token_hint` the user is asked to confirm (§2: the OP SHOULD ask), so
a third-party page cannot sign users out by linking here."""

from __future__ import annotations

import hmac
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from engine import events
from engine.accounts.sessions import BrowserSession, current_session, end_session
from engine.errors import InvalidRequest, InvalidToken
from engine.exchange import Answer, Call, CookieJar
from engine.oauth.backchannel import session_ended
from engine.oauth.flows import realm_base
from engine.oauth.params import form_params
from engine.realm import Realm
from engine.secrets_util import sha256_hex
from engine.templates import render

if TYPE_CHECKING:
    from engine.services import Services

CARRIED = ("post_logout_redirect_uri", "state", "client_id")
ID_TOKEN_TYP = "jwt"  # what this realm's ID tokens carry in `typ` (engine.tokens.jwt.sign)


async def id_token_hint(services: Services, realm: Realm, hint: str | None) -> dict[str, Any] | None:
    """The claims of `hint` if it is an ID token this realm issued to one of its clients
    (signature, `iss`, `typ: JWT`, `aud`); InvalidRequest otherwise. An access token
    (`typ: at+jwt`, RFC 9068 §2.1) is not a hint: anyone a client shared it with (a resource
    server) could otherwise sign the user out without being asked. An expired ID token is
    still a good hint of who is logging out (RP-Initiated Logout §2), so `exp` is not checked."""
    if not hint:
        return None
    refused = InvalidRequest("id_token_hint is not an ID token issued by this realm")
    try:
        claims = await services.tokens.verify_signed(realm, hint, typ=ID_TOKEN_TYP, check_exp=False)
    except InvalidToken:
        raise refused from None
    aud = claims.get("aud")
    audiences = aud if isinstance(aud, list) else [aud]
    if not audiences or not all(isinstance(a, str) for a in audiences):
        raise refused
    if not any(realm.client(audience) is not None for audience in audiences):
        raise refused
    azp = claims.get("azp")
    if azp is not None and azp not in audiences:
        raise refused
    if not isinstance(claims.get("sub"), str) or "scope" in claims or "client_id" in claims:
        raise refused  # an ID token names its user and carries no grant (OIDC Core §2)
    claims["aud"] = audiences
    return claims


def _csrf(session: BrowserSession) -> str:
    return sha256_hex("logout\0" + session.key)[:32]


async def logout(services: Services, realm: Realm, call: Call) -> Answer:
    params = await form_params(call, query=True)
    hint_claims = await id_token_hint(services, realm, params.get("id_token_hint"))
    client_id = params.get("client_id")
    if hint_claims is not None:
        audiences = hint_claims["aud"]
        if client_id is not None and client_id not in audiences:
            raise InvalidRequest("client_id does not match the id_token_hint")
        client_id = client_id or hint_claims.get("azp") or next(a for a in audiences if realm.client(a))
    redirect_to = params.get("post_logout_redirect_uri")
    if redirect_to is not None:
        client = realm.client(client_id)
        if client is None:
            raise InvalidRequest("post_logout_redirect_uri needs id_token_hint or client_id")
        if redirect_to not in client.post_logout_redirect_uris:
            raise InvalidRequest("post_logout_redirect_uri is not registered for this client")

    session = await current_session(call.cookies, services, realm)
    confirmed = hint_claims is not None and (session is None or hint_claims.get("sub") == session.user_id)
    if session is not None and not confirmed:
        posted = call.method == "POST" and params.get("confirm") == "yes"
        if not (posted and hmac.compare_digest(params.get("csrf", ""), _csrf(session))):
            carry = {k: params[k] for k in CARRIED if k in params}
            return render(realm, services, "logout.html", signed_out=False, csrf=_csrf(session),
                          carry=carry, base=realm_base(call, realm))

    if redirect_to is not None:
        location = redirect_to
        if "state" in params:
            location += ("&" if "?" in redirect_to else "?") + urlencode({"state": params["state"]})
        answer = Answer.see_other(location)
    else:
        answer = render(realm, services, "logout.html", signed_out=True, base=realm_base(call, realm))
    if session is not None:
        cookies = CookieJar()
        await end_session(cookies, services, realm, session)
        answer = answer.with_cookies(cookies)
        revoked = await services.durable.revoke_families(
            realm.name, services.clock.now(), "logout", session_id=session.sid
        )
        await services.tokens.deny_session(realm, session.sid)  # and the session's access tokens
        await session_ended(services, realm, session.user_id, session.sid)  # queued, sent in the background
        await services.audit(realm.name, events.LOGOUT, user_id=session.user_id, client_id=client_id,
                             families_revoked=revoked)
    return answer
