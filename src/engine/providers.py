"""What identity providers are to the engine: two small capability Protocols (Dex's
connector model) and the identity they return.

A *credentials* provider verifies what the user typed (password, later LDAP); a
*redirect* provider sends the browser upstream and turns the callback into an identity.
Opaque upstream data never reaches Tessera's clients: only the mapped claims do.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    from engine.config.models import ProviderSettings


class ProviderError(Exception):
    """Base of the typed errors a provider raises; the engine maps them."""


class LoginFailed(ProviderError):
    """Wrong credentials. The message shown to the user is always the same generic one."""


class AccessDenied(ProviderError):
    """The user (or upstream) refused."""


class UpstreamError(ProviderError):
    """The upstream is down or answered something unusable; logged, shown generically."""


@dataclass(frozen=True)
class ExternalIdentity:
    """Who the user is, as a provider asserts it.

    `issuer` + `subject` identify the user at the source for good (an email may change);
    for the password provider they are the realm's own issuer and the local user id.
    """

    issuer: str
    subject: str
    email: str | None = None
    email_verified: bool = False
    claims: dict[str, Any] = field(default_factory=dict)  # name, given_name, picture, ...
    user_id: str | None = None  # set by providers that authenticate local users


@dataclass(frozen=True)
class ProviderContext:
    """What the engine hands a provider when building it for one realm."""

    realm: str
    issuer: str
    base_url: str  # the realm's public base URL, e.g. http://localhost:4000/realms/acme
    services: Any = None  # engine services (stores, hashing, http session) for this realm


@runtime_checkable
class CredentialsProvider(Protocol):
    settings: ProviderSettings

    async def login(self, username: str, password: str) -> ExternalIdentity:
        """Return the identity or raise LoginFailed."""


@runtime_checkable
class RedirectProvider(Protocol):
    settings: ProviderSettings

    async def login_url(self, callback_url: str, state: str, nonce: str, code_challenge: str) -> str:
        """The upstream authorization URL to send the browser to."""

    async def handle_callback(
        self, callback_url: str, params: dict[str, str], nonce: str, code_verifier: str
    ) -> ExternalIdentity:
        """Exchange the callback's code and return who came back; raise AccessDenied or UpstreamError."""
