"""RFC 6749 §3.2 the token endpoint: authenticate the client, dispatch on `grant_type`
through the grant registry (one module per grant), answer with `Cache-Control: no-store`.

Form-encoded per the RFC; a JSON body is accepted too, as the seed's examples send it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

from engine.config import Client
from engine.errors import InvalidRequest, UnauthorizedClient, UnsupportedGrantType
from engine.exchange import Answer, Call
from engine.oauth.clients import authenticate_counted
from engine.oauth.grants.authorization_code import AuthorizationCodeGrant
from engine.oauth.grants.client_credentials import ClientCredentialsGrant
from engine.oauth.grants.device_code import DeviceCodeGrant
from engine.oauth.grants.refresh_token import RefreshTokenGrant
from engine.oauth.grants.token_exchange import TokenExchangeGrant
from engine.oauth.params import form_params
from engine.oauth.ratelimit import enforce
from engine.realm import Realm

if TYPE_CHECKING:
    from engine.services import Services


class GrantRequest(NamedTuple):  # immutable, and built on every /token request without a setattr per field
    realm: Realm
    client: Client
    params: dict[str, str]
    services: Services
    ip: str


class Grant(Protocol):
    grant_type: str
    public_clients: bool  # may a public client use it

    async def issue(self, request: GrantRequest) -> dict[str, Any]: ...


GRANTS: dict[str, Grant] = {
    grant.grant_type: grant
    for grant in (AuthorizationCodeGrant(), RefreshTokenGrant(), ClientCredentialsGrant(), DeviceCodeGrant(),
                  TokenExchangeGrant())
}


async def token(services: Services, realm: Realm, call: Call) -> Answer:
    """The token endpoint: counted per address before the body is read."""
    await enforce(services, realm, "token", call.ip, realm.config.rate_limits.token_per_ip)
    params = await form_params(call, allow_json=True)
    return Answer.no_store_json(
        await token_answer(services, realm, params, call.headers.get("Authorization"), call.ip))


async def token_answer(services: Services, realm: Realm, params: dict[str, str], authorization: str | None,
                       ip: str) -> dict[str, Any]:
    """The token response for a counted (rate limit) request's parameters; OAuthError
    otherwise."""
    grant_type = params.get("grant_type")
    if not grant_type:
        raise InvalidRequest("grant_type is required")
    grant = GRANTS.get(grant_type)
    if grant is None:
        raise UnsupportedGrantType(f"unsupported grant_type {grant_type!r}")
    client = await authenticate_counted(services, realm, authorization, params, ip,
                                        allow_public=grant.public_clients)
    if grant_type not in client.grant_types:
        raise UnauthorizedClient(f"this client may not use {grant_type}")
    body = await grant.issue(GrantRequest(realm, client, params, services, ip))
    services.metrics.token_issued(realm.name, grant_type)
    return body
