"""What the grants share: scope and resource (RFC 8707) narrowing, and the token response
(RFC 6749 §5.1)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from engine.config import Client
from engine.errors import InvalidGrant, InvalidScope, InvalidTarget
from engine.hookspecs import PasswordCapability
from engine.realm import Realm
from engine.store.protocols import User
from engine.tokens.revocation import user_cutoff_key

if TYPE_CHECKING:
    from engine.services import Services


def parse_scope(value: str | None) -> list[str]:
    """Space-delimited, order kept, duplicates dropped (RFC 6749 §3.3)."""
    seen: dict[str, None] = {}
    for part in (value or "").split(" "):
        if part:
            seen.setdefault(part, None)
    return list(seen)


def narrow_scope(requested: str | None, granted: str) -> str:
    """§6: a refresh request may ask for less than was granted, never more."""
    if not requested:
        return granted
    granted_set = set(granted.split())
    asked = parse_scope(requested)
    if not set(asked) <= granted_set:
        raise InvalidScope("the requested scope exceeds the scope originally granted")
    return " ".join(asked)


def requested_resource(params: dict[str, str]) -> str | None:
    """The one resource a token request names (RFC 8707 §2: `resource`; `audience`, as some
    client libraries call it, is taken as the same thing); None if it names none."""
    resource, audience = params.get("resource") or None, params.get("audience") or None
    if resource and audience and resource != audience:
        raise InvalidTarget("resource and audience name different targets")
    return resource or audience


def granted_resources(client: Client, resource: str | None) -> tuple[str, ...]:
    """What an authorization grants (and its refresh family keeps): the one resource the
    authorization request named, else every audience of the client."""
    return (resource,) if resource else tuple(client.audience)


def narrow_resources(client: Client, granted: tuple[str, ...] | None, requested: str | None) -> list[str]:
    """The access token's audience for a grant of `granted` (RFC 8707 §2.2, RFC 9700 §2.3):
    exactly the grant, or the one `requested` resource if it is part of the grant; never
    more. `granted` None is a refresh family from before grants were recorded: it keeps
    what it always got, the client's audiences. An audience the client no longer has in
    its configuration is not issued any more."""
    grant = tuple(client.audience) if granted is None else granted
    current = [r for r in grant if r in client.audience]
    if requested is not None:
        if requested not in current:
            raise InvalidTarget("resource is not part of this grant")
        return [requested]
    if grant and not current:
        raise InvalidGrant("the resources of this grant are no longer available to the client")
    return current or [client.client_id]  # no resource granted: the token is for the client itself


def refresh_allowed(realm: Realm, client: Client, user: User, scopes: set[str]) -> bool:
    """Seed security musts: refresh tokens only for a client that may refresh, and only
    once the user's email is verified (unless the realm says otherwise)."""
    if "refresh_token" not in client.grant_types:
        return False
    if not user.email_verified and (
        realm.config.refresh_requires_verified_email
        # a provider may demand it too (the password provider's `require_verified_email`)
        or any(isinstance(p, PasswordCapability) and p.require_verified_email for p in realm.providers.values())
    ):
        return False
    if realm.config.refresh_requires_offline_access and "offline_access" not in scopes:
        return False
    return True


def token_response(access_token: str, expires_in: int, scope: str, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "access_token": access_token,
        "token_type": "Bearer",
        "expires_in": expires_in,
        "scope": scope,
    }
    body.update({k: v for k, v in extra.items() if v is not None})
    return body


def authentication_of(grant: dict[str, Any]) -> dict[str, Any]:
    """How the user signed in, as a code, a device grant or a refresh family keeps it:
    `amr` (RFC 8176) and `acr` (engine.accounts.mfa), for the ID tokens issued from it."""
    return {name: grant[name] for name in ("amr", "acr") if grant.get(name) is not None}


def require_live(user: User | None) -> User:
    if user is None or user.disabled:
        raise InvalidGrant("the user no longer exists or is disabled")
    return user


async def live_user(services: Services, realm: Realm, user_id: str, *, granted_at: float | None = None) -> User:
    """The user, if it still exists and is enabled; with `granted_at` (when the user gave
    the grant: a code issued, a device request approved), also only if nothing ended the
    user's sessions since (a password reset, a proof of the address, an admin revocation:
    engine.tokens.revocation's user cutoff), or the grant would outlive the reset."""
    user = require_live(await services.durable.get_user(realm.name, user_id))
    if granted_at is not None:
        cutoff = await services.ephemeral.get(user_cutoff_key(realm.name, user_id))
        if cutoff is not None and granted_at <= cutoff.get("up_to", 0):
            raise InvalidGrant("the grant was given before the user's sessions were ended")
    return user


async def mint_user_tokens(
    services: Services,
    realm: Realm,
    client: Client,
    user: User,
    *,
    scope: str,
    auth_time: int,
    audience: list[str] | None = None,
    nonce: str | None = None,
    session_id: str | None = None,
    grant_id: str | None = None,
    amr: list[str] | None = None,
    acr: str | None = None,
) -> tuple[Any, str | None]:
    """The access token, and the ID token when `openid` was granted (OIDC Core §3.1.3.3,
    §12.2), that the user-facing grants issue."""
    # RFC 9068 §2.2.1: a resource server may ask for a stronger sign-in (RFC 9470) too
    how = {name: value for name, value in (("acr", acr), ("amr", amr)) if value}
    minted = await services.tokens.access_token(
        realm, client, subject=user.id, scope=scope, audience=audience, auth_time=auth_time,
        grant_id=grant_id, session_id=session_id, extra=how or None,
    )
    scopes = set(scope.split())
    id_token = None
    if "openid" in scopes:
        id_token = (await services.tokens.id_token(
            realm, client, user, scopes=scopes, auth_time=auth_time, nonce=nonce,
            access_token=minted.token, session_id=session_id, amr=amr, acr=acr,
        )).token
    return minted, id_token
