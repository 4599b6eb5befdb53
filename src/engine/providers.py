"""What identity providers are to the engine: two small capability Protocols (Dex's
connector model) and the identity they return.

A *credentials* provider verifies what the user typed (password, later LDAP); a
*redirect* provider sends the browser upstream and turns the callback into an identity.
Opaque upstream data never reaches Tessera's clients: only the mapped claims do.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

from pydantic import Field

from engine.config.models import ProviderSettings

if TYPE_CHECKING:
    import aiohttp

    from engine.clock import Clock
    from engine.plugins import PasswordHasher
    from engine.store import User


class ProviderError(Exception):
    """Base of the typed errors a provider raises; the engine maps them."""


class LoginFailed(ProviderError):
    """Wrong credentials. The message shown to the user is always the same generic one."""


class AccessDenied(ProviderError):
    """The user (or upstream) refused."""


class UpstreamError(ProviderError):
    """The upstream is down or answered something unusable; logged, shown generically.

    `status` is the upstream's HTTP status when there was one (e.g. 404 from an optional
    endpoint a provider may decide to tolerate)."""

    def __init__(self, message: str = "", *, status: int | None = None):
        super().__init__(message)
        self.status = status


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
    # The local user as the provider has just read it (through `context.accounts`), if it
    # did: the engine checks it (not disabled) instead of reading it again.
    user: User | None = None
    # RFC 8176 authentication methods the upstream reports (its ID token's `amr`), if any.
    amr: tuple[str, ...] = ()


class ProviderAccounts(Protocol):
    """The realm users API a credentials provider may call (`context.accounts`)."""

    async def by_email_with_password_hash(self, realm: str, email: str) -> tuple[User | None, str | None]:
        """The user with this address and its stored password hash, in one read (either
        may be None; an address no account can hold gives (None, None))."""

    async def set_password_hash(self, realm: str, user_id: str, secret_hash: str) -> None:
        """Store a new password hash for the user (e.g. an upgraded one after sign-in)."""


class ProviderPasswords(Protocol):
    """Password hashing off the event loop (`context.passwords`): bounded worker threads."""

    async def hash(self, hasher: PasswordHasher, password: str) -> str:
        """`hasher.hash(password)` in a hashing thread."""

    async def verify(self, stored_hash: str, password: str) -> bool:
        """Verify against whichever registered hasher identifies `stored_hash`."""


class ProviderServices(Protocol):
    """The part of the engine a provider may reach, and nothing else (not the stores, not
    the token service). The engine's own services object satisfies it; a provider sees it
    only through `ProviderContext`'s typed members."""

    @property
    def http(self) -> aiohttp.ClientSession | None: ...

    @property
    def clock(self) -> Clock: ...

    @property
    def accounts(self) -> ProviderAccounts: ...

    @property
    def passwords(self) -> ProviderPasswords: ...


@dataclass(frozen=True)
class ProviderContext:
    """What the engine hands a provider when building it for one realm: who the realm is,
    and the few engine services a provider may call (`http`, `now()`, `accounts`,
    `passwords`)."""

    realm: str
    issuer: str
    base_url: str  # the realm's public base URL, e.g. http://localhost:4000/realms/acme
    display_name: str | None = None  # the realm's display name, when its config sets one
    engine: ProviderServices | None = field(default=None, repr=False)  # read through the members below

    @property
    def http(self) -> aiohttp.ClientSession:
        """The app's shared `aiohttp.ClientSession` for talking to upstreams (no cookie jar,
        bounded timeouts). Only available while the app runs."""
        session = self.engine.http if self.engine is not None else None
        if session is None:
            raise UpstreamError("no HTTP client: the application is not running")
        return session

    def now(self) -> int:
        """Current time (epoch seconds) from the engine's clock, which tests control."""
        return self.engine.clock.timestamp() if self.engine is not None else int(time.time())

    @property
    def accounts(self) -> ProviderAccounts:
        """The realm users API (a credentials provider's users)."""
        return self._engine().accounts

    @property
    def passwords(self) -> ProviderPasswords:
        """Password hashing and verifying in the engine's bounded hashing threads."""
        return self._engine().passwords

    def _engine(self) -> ProviderServices:
        if self.engine is None:
            raise RuntimeError(f"the provider context of realm {self.realm} is not attached to an engine")
        return self.engine


class RedirectProviderSettings(ProviderSettings):
    """Base of a redirect provider's settings: what the engine decides about the identities
    any upstream returns, so every federation plugin offers the same account rules."""

    link_by_verified_email: bool = Field(
        True, description="link a first login to the realm user with the same upstream-verified email"
    )
    unverified_email: Literal["no_email", "refuse"] = Field(
        "no_email",
        description="an upstream identity whose email the upstream has not verified: no_email = the"
                    " account is made without an email (and never linked by email); refuse = no sign-in",
    )
    trust_upstream_mfa: bool = Field(
        False, description="an upstream sign-in whose `amr` says it was multi-factor counts as both"
                           " factors (no second factor asked here); otherwise it is the first factor only",
    )


@runtime_checkable
class CredentialsProvider(Protocol):
    settings: ProviderSettings

    async def login(self, username: str, password: str) -> ExternalIdentity:
        """Return the identity or raise LoginFailed."""


@runtime_checkable
class RedirectProvider(Protocol):
    """Sends the browser upstream and turns the callback into an identity.

    The engine owns the browser flow: it makes `state` (an unguessable single-use handle
    bound to the browser), `nonce` and the PKCE pair, keeps them server-side, and checks
    the callback's `state` (and an upstream `error=access_denied`) before calling
    `handle_callback`. A provider class also sets ``kind = "redirect"``, which puts a
    "Continue with ..." button on the login page. Its settings subclass
    `RedirectProviderSettings`, whose `link_by_verified_email` (default true) and
    `unverified_email` (default `no_email`) the engine applies to every identity returned.
    """

    settings: ProviderSettings

    async def login_url(self, callback_url: str, state: str, nonce: str, code_challenge: str) -> str:
        """The upstream authorization URL to send the browser to; `callback_url` is this
        provider's redirect URI at Tessera, `code_challenge` the S256 PKCE challenge."""

    async def handle_callback(
        self, callback_url: str, params: dict[str, str], nonce: str, code_verifier: str
    ) -> ExternalIdentity:
        """Exchange the callback's code (`params` is its query) and return who came back:
        a stable (issuer, subject), the email and whether the upstream verified it, and
        mapped profile claims. Raise AccessDenied or UpstreamError."""
