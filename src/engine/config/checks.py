"""Cross-reference checks of one realm: what its model cannot see field by field (a client
asking for an undeclared scope, a grant its type may not use, a misspelled claim, ...).

They also run on a realm whose other parts failed validation (issue 18 item 5: `idp check`
reports every problem in one pass): the loader validates what it can and names the parts
that did not validate in `incomplete`; a check that needs one of them is skipped rather
than guessing (an undeclared-scope check without the realm's `scopes` would be noise).
"""

from __future__ import annotations

import difflib
import ipaddress
from pathlib import Path
from urllib.parse import urlsplit

from engine.config.models import Client, RealmBase
from engine.config.yaml_source import Loc

__all__ = ["OIDC_STANDARD_CLAIMS", "realm_problems", "templates_problems"]

# OpenID Connect Core §5.1 (standard claims), plus `sub`. Tessera releases these from the
# user's record (email, email_verified) and profile (set at registration, by an operator,
# or copied from an upstream identity provider).
OIDC_STANDARD_CLAIMS = frozenset({
    "sub", "name", "given_name", "family_name", "middle_name", "nickname", "preferred_username",
    "profile", "picture", "website", "email", "email_verified", "gender", "birthdate", "zoneinfo",
    "locale", "phone_number", "phone_number_verified", "address", "updated_at",
})
# Provider types whose users only have what Tessera itself records: in a realm with only
# these, a non-standard claim can never have a value. Federated providers copy the
# upstream's other claims into the profile (engine.accounts.linking), so custom names are
# allowed there, misspellings of standard ones still not.
LOCAL_PROVIDER_TYPES = frozenset({"password"})

USER_GRANTS = ("authorization_code", "urn:ietf:params:oauth:grant-type:device_code")


def realm_problems(realm: RealmBase, incomplete: frozenset[str] = frozenset()) -> list[tuple[Loc, str]]:
    """Cross-reference checks inside one realm; each (location, message). `incomplete`:
    top-level keys that did not validate (absent from `realm` or only partly there)."""
    problems: list[tuple[Loc, str]] = []
    scopes = None if "scopes" in incomplete else realm.all_scopes()
    algs = None if "signing" in incomplete else realm.signing.algs
    seen_clients: dict[str, int] = {}
    for i, client in enumerate(realm.clients):
        at: Loc = ("clients", i)
        if client.client_id in seen_clients:
            problems.append(((*at, "client_id"), f"duplicate client_id {client.client_id!r}"))
        seen_clients.setdefault(client.client_id, i)
        for j, scope in enumerate(client.scopes):
            if scopes is not None and scope not in scopes:
                problems.append(((*at, "scopes", j), f"scope {scope!r} is not declared in the realm's scopes"
                                 + _did_you_mean(scope, list(scopes))))
        if client.type == "public":
            if "client_credentials" in client.grant_types:
                j = client.grant_types.index("client_credentials")
                problems.append(((*at, "grant_types", j), "a public client may not use client_credentials"))
            if client.secret is not None or client.secret_sha256 is not None:
                problems.append(((*at, "type"), "a public client has no secret"))
        else:
            if client.secret is None and client.secret_sha256 is None:
                problems.append((at, "a confidential client needs `secret` (${ENV}) or `secret_sha256`"))
            if client.secret is not None and client.secret_sha256 is not None:
                problems.append(((*at, "secret"), "give either `secret` or `secret_sha256`, not both"))
            if client.secret is not None and len(client.secret.get_secret_value()) < 16:
                problems.append(((*at, "secret"), "client secret is shorter than 16 characters"))
        if "authorization_code" in client.grant_types and not client.redirect_uris:
            problems.append((at, "authorization_code needs at least one redirect_uri"))
        if "refresh_token" in client.grant_types and "authorization_code" not in client.grant_types:
            if "urn:ietf:params:oauth:grant-type:device_code" not in client.grant_types:
                problems.append(((*at, "grant_types"), "refresh_token needs a grant that issues one"))
        problems += _token_exchange_problems(realm, client, at)
        for field in ("access_token_alg", "id_token_alg"):
            alg = getattr(client, field)
            if alg is not None and algs is not None and alg not in algs:
                problems.append(((*at, field), f"{alg} is not in the realm's signing.algs"))
    if algs is not None:
        if realm.signing.default_alg not in algs:
            problems.append((("signing", "default_alg"), "default_alg must be one of signing.algs"))
        if "RS256" not in algs:
            problems.append((("signing", "algs"), "RS256 is required by OpenID Connect Core §15.1"))
    for scope in realm.claims:
        if scopes is not None and scope not in scopes:
            problems.append((("claims", scope), f"claims for undeclared scope {scope!r}"
                             + _did_you_mean(scope, list(scopes))))
    if "providers" not in incomplete:
        problems += _claim_name_problems(realm)
    seen_providers: set[str] = set()
    for i, provider in enumerate(getattr(realm, "providers", [])):
        if provider.id in seen_providers:
            problems.append((("providers", i, "id"), f"duplicate provider id {provider.id!r}"))
        seen_providers.add(provider.id)
    if "mfa" not in incomplete and "clients" not in incomplete:
        problems += _mfa_problems(realm)
    if "providers" not in incomplete:  # (the realm-wide "no way" needs every client)
        problems += [p for p in _sign_in_problems(realm) if "clients" not in incomplete or p[0][0] == "clients"]
    return problems


def _claim_name_problems(realm: RealmBase) -> list[tuple[Loc, str]]:
    """A claim name in `claims:` must be one a user can have: a standard claim (OIDC Core
    §5.1), or, in a realm with a federated provider, any name but a near-miss of one."""
    federated = any(p.type not in LOCAL_PROVIDER_TYPES for p in getattr(realm, "providers", []))
    problems: list[tuple[Loc, str]] = []
    for scope, names in realm.claims.items():
        for j, name in enumerate(names):
            if name in OIDC_STANDARD_CLAIMS:
                continue
            close = difflib.get_close_matches(name, sorted(OIDC_STANDARD_CLAIMS), n=1, cutoff=0.75)
            if close:
                problems.append((("claims", scope, j), f"claim {name!r} is not an OpenID Connect standard claim"
                                 f" (OIDC Core §5.1); did you mean {close[0]!r}?"))
            elif not federated:
                hint = _did_you_mean(name, sorted(OIDC_STANDARD_CLAIMS))
                problems.append((("claims", scope, j), f"claim {name!r} is not an OpenID Connect standard claim"
                                 " (OIDC Core §5.1), and with only local providers no user can have it" + hint))
    return problems


def _mfa_problems(realm: RealmBase) -> list[tuple[Loc, str]]:
    """A client that needs a second factor in a realm that offers none could never sign
    anybody in (every request would end in unmet_authentication_requirements)."""
    if realm.mfa.available:
        return []
    return [(("clients", i, "require_mfa"), "require_mfa needs a second factor the realm offers:"
             " set mfa.totp or mfa.passkeys to optional or required")
            for i, client in enumerate(realm.clients) if client.require_mfa]


def _did_you_mean(word: str, choices: list[str]) -> str:
    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


def _sign_in_problems(realm: RealmBase) -> list[tuple[Loc, str]]:
    """A realm must be able to issue something: users sign in through a provider; without
    one, only confidential clients using client_credentials get tokens (a machine-to-machine
    realm). A client whose grant needs a user, in a realm without a provider, can never
    succeed: that is a mistake, not a configuration."""
    if getattr(realm, "providers", []):
        return []
    problems: list[tuple[Loc, str]] = []
    machine = False
    for i, client in enumerate(realm.clients):
        if any(grant in client.grant_types for grant in USER_GRANTS):
            problems.append((("clients", i, "grant_types"),
                             "this client signs users in, but the realm has no provider to sign in with"))
        elif client.type == "confidential" and "client_credentials" in client.grant_types:
            machine = True
    if not problems and not machine:
        problems.append((("name",), "the realm has no way to sign in: add a provider (users) or a"
                                    " confidential client_credentials client (machines)"))
    return problems


def templates_problems(realm: RealmBase, config_dir: Path) -> list[tuple[Loc, str]]:
    """`templates:` is a directory inside the configuration directory, symlinks resolved."""
    if realm.templates is None:
        return []
    root = config_dir.resolve()
    directory = (root / realm.templates).resolve()
    if not directory.is_relative_to(root):
        return [(("templates",), f"templates: {realm.templates!r} resolves outside the configuration directory")]
    if not directory.is_dir():
        return [(("templates",), f"templates: directory {realm.templates!r} does not exist")]
    return []


TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"


def _token_exchange_problems(realm: RealmBase, client: Client, at: Loc) -> list[tuple[Loc, str]]:
    """RFC 8693: the grant and its policy go together, for a confidential client, and the
    policy names clients of this realm."""
    listed = TOKEN_EXCHANGE in client.grant_types
    policy = client.token_exchange
    if listed and policy is None:
        return [((*at, "grant_types", client.grant_types.index(TOKEN_EXCHANGE)),
                 "token exchange needs a `token_exchange` policy (from_clients, audiences)")]
    if policy is None:
        return []
    problems: list[tuple[Loc, str]] = []
    if not listed:
        problems.append(((*at, "token_exchange"),
                         f"`token_exchange` is set but {TOKEN_EXCHANGE} is not in grant_types"))
    if client.type == "public":
        problems.append(((*at, "token_exchange"), "a public client may not use token exchange"))
    known = {c.client_id for c in realm.clients}
    for j, name in enumerate(policy.from_clients):
        if name not in known:
            problems.append(((*at, "token_exchange", "from_clients", j), f"no client {name!r} in this realm"))
    return problems


def passkeys_problems(realm: RealmBase, base_url: str | None) -> list[tuple[Loc, str]]:
    """Passkeys (`mfa.passkeys` on) need a base URL that browsers accept for WebAuthn: its
    host is the relying party id, which may not be an IP address (WebAuthn Level 3 §5.1.3:
    a valid domain), and the pages must be a secure context (https, or http://localhost)."""
    if realm.mfa.passkeys == "off" or not base_url:
        return []
    try:
        parts = urlsplit(base_url)
        host = parts.hostname or ""
    except ValueError:
        return []  # an invalid base_url is its own problem
    try:
        ipaddress.ip_address(host)
    except ValueError:
        pass
    else:
        return [(("mfa", "passkeys"), f"passkeys need base_url on a domain name: browsers refuse the IP address"
                                      f" {host} as WebAuthn relying party id (use http://localhost for a laptop)")]
    secure = parts.scheme == "https" or host == "localhost" or host.endswith(".localhost")
    if not secure:
        return [(("mfa", "passkeys"), f"passkeys need base_url on https (or http://localhost): browsers offer"
                                      f" WebAuthn only to secure contexts, and {base_url} is not one")]
    return []