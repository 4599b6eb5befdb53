"""An IdP under test: a realm config on disk, `create_app` on the parametrised storage
backends (the `backend` fixture of tests/conftest.py), a frozen clock, and helpers."""

from __future__ import annotations

import base64
import hashlib
import secrets
import textwrap
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from engine.clock import FrozenClock
from engine.config import load_config
from engine.plugins import Plugins
from engine.web.app import create_app
from engine.web.appkeys import SERVICES

WORKER_SECRET = "worker-secret-" + "w" * 32
WEB_SECRET = "web-secret-" + "x" * 32
SPA_REDIRECT = "http://localhost:3000/callback"
WEB_REDIRECT = "https://web.example.com/cb"

ACME = f"""\
name: acme
display_name: ACME
scopes:
  videos.read: {{description: Read videos}}
providers:
  - id: password
    type: password
    argon2: {{memory_cost: 1024, time_cost: 1, parallelism: 1}}
clients:
  - client_id: spa
    type: public
    redirect_uris: ["{SPA_REDIRECT}"]
    post_logout_redirect_uris: ["http://localhost:3000/"]
    scopes: [openid, profile, email, offline_access]
    consent: implicit
  - client_id: web
    type: confidential
    secret: ${{WEB_SECRET}}
    redirect_uris: ["{WEB_REDIRECT}"]
    scopes: [openid, profile, email, offline_access, videos.read]
    consent: required
    reuse_grace: 30s
  - client_id: worker
    type: confidential
    secret_sha256: {hashlib.sha256(WORKER_SECRET.encode()).hexdigest()}
    grant_types: [client_credentials]
    scopes: [videos.read]
    audience: [videos-api, photos-api]
"""
OTHER = f"""\
name: other
providers:
  - {{id: password, type: password, argon2: {{memory_cost: 1024, time_cost: 1, parallelism: 1}}}}
clients:
  - client_id: spa
    type: public
    redirect_uris: ["{SPA_REDIRECT}"]
    scopes: [openid, profile, email, offline_access]
    consent: implicit
"""


def pkce_pair() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


def query_of(location: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


@dataclass
class Idp:
    client: Any  # aiohttp TestClient
    services: Any
    clock: FrozenClock
    root: str = ""  # acme is the root realm: served at / only (OIDC Discovery §4.3)

    @property
    def issuer(self) -> str:
        return str(self.client.make_url("/")).rstrip("/")  # acme is the root realm

    def realm(self, name: str = "acme"):
        return self.services.runtime.realms[name]

    async def add_user(self, email: str = "alice@example.com", password: str = "correct horse battery",
                       *, verified: bool = True, realm: str = "acme", **profile: Any):
        from engine.accounts.users import create_user

        return await create_user(self.services, self.realm(realm), email=email, password=password,
                                 email_verified=verified, profile=profile or {"name": "Alice"})


def write_config(tmp_path, backend, realms: dict[str, str], base_url: str) -> Any:
    (tmp_path / "realms").mkdir()
    for name, text in realms.items():
        (tmp_path / "realms" / f"{name}.yaml").write_text(textwrap.dedent(text))
    (tmp_path / "idp.yaml").write_text(
        f"base_url: {base_url}\nrealms: realms/\nroot_realm: acme\n"
        f"storage: {{durable: '{backend.durable_url}', ephemeral: '{backend.ephemeral_url}'}}\n"
    )
    return load_config(tmp_path / "idp.yaml", Plugins().providers.settings_models(),
                       environ={"WEB_SECRET": WEB_SECRET})


async def build_idp(tmp_path, backend, aiohttp_client, port: int, acme: str = ACME) -> Idp:
    """The IdP under test with `acme` (the root realm, as given) and `other`, on `port`."""
    config = write_config(tmp_path, backend, {"acme": acme, "other": OTHER}, f"http://127.0.0.1:{port}")
    clock = FrozenClock()
    app = create_app(config, clock=clock, ephemeral_prefix=backend.ephemeral_prefix,
                     environ={"IDP_KEY_ENCRYPTION_KEY": base64.urlsafe_b64encode(b"k" * 32).decode()})
    client = await aiohttp_client(app, server_kwargs={"port": port})
    return Idp(client=client, services=app[SERVICES], clock=clock)


@pytest.fixture
async def idp(tmp_path, backend, aiohttp_client, unused_tcp_port_factory) -> Idp:
    return await build_idp(tmp_path, backend, aiohttp_client, unused_tcp_port_factory())


@pytest.fixture
async def multi(tmp_path, backend, aiohttp_client, unused_tcp_port_factory) -> Idp:
    """The IdP whose `acme` realm also has the client `multi` with three audiences
    (tests.oauth.audiences: the RFC 8707 resource tests)."""
    from tests.oauth.audiences import multi_audience_idp

    return await multi_audience_idp(tmp_path, backend, aiohttp_client, unused_tcp_port_factory)


def basic_auth(client_id: str, secret: str) -> dict[str, str]:
    """An `Authorization: Basic` header (RFC 6749 §2.3.1; ids and secrets here need no escaping)."""
    return {"Authorization": "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()}


async def issue_user_tokens(idp: Idp, user: Any, client_id: str = "web",
                            scope: str = "openid profile email offline_access",
                            realm: str = "acme") -> dict[str, Any]:
    """A token response for `user` as the code grant would give it, minted directly
    (access, ID and refresh token of a new family), for tests that do not drive /authorize."""
    services, the_realm = idp.services, idp.realm(realm)
    client = the_realm.clients[client_id]
    auth_time = idp.clock.timestamp()
    refresh_token, family = await services.refresh.start_family(
        the_realm, client, user_id=user.id, scope=scope, auth_time=auth_time, session_id=None)
    access = await services.tokens.access_token(the_realm, client, subject=user.id, scope=scope,
                                                auth_time=auth_time, grant_id=family.id)
    scopes = set(scope.split())
    id_token = await services.tokens.id_token(the_realm, client, user, scopes=scopes,
                                              auth_time=auth_time, access_token=access.token)
    return {
        "access_token": access.token,
        "token_type": "Bearer",
        "expires_in": access.claims["exp"] - access.claims["iat"],
        "scope": scope,
        "id_token": id_token.token,
        "refresh_token": refresh_token,
    }


def b64url_json(value: dict[str, Any]) -> str:
    import json

    return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()


def jwt_parts(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Header and claims of a JWT, unverified (for assertions only)."""
    import json

    def decode(part: str) -> dict[str, Any]:
        return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))

    header, claims, _signature = token.split(".")
    return decode(header), decode(claims)


def tampered(token: str) -> str:
    """`token` with one signature character changed (not the last: its low bits may be padding)."""
    header, claims, signature = token.split(".")
    index = len(signature) // 2
    swapped = "A" if signature[index] != "A" else "B"
    return ".".join([header, claims, signature[:index] + swapped + signature[index + 1:]])


def unsigned(token: str) -> str:
    """The claims of `token` re-wrapped as an `alg: none` JWT with an empty signature."""
    header, claims = jwt_parts(token)
    return b64url_json({**header, "alg": "none"}) + "." + b64url_json(claims) + "."
