"""Pydantic models of `idp.yaml` and of one realm file (`realms/<name>.yaml`).

Frozen, `extra="forbid"`; issuers and URIs stay plain strings (pydantic URL types
normalise, and OIDC compares `iss` as exact strings). Provider settings are contributed by
plugins: `build_realm_model` makes the discriminated union from the registry at start-up,
so the core imports no plugin.
"""

from __future__ import annotations

import ipaddress
import re
from datetime import timedelta
from functools import cached_property
from typing import Annotated, Any, Literal, Union
from urllib.parse import urlsplit

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, SecretStr, create_model, field_validator
from pydantic.json_schema import SkipJsonSchema

from engine.config.durations import Duration
from engine.config.env import ENV, SECRET
from engine.config.values import logo_url, mailbox, redirect_uri, relative_directory


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


NAME_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,62}$"

GrantType = Literal[
    "authorization_code",
    "refresh_token",
    "client_credentials",
    "urn:ietf:params:oauth:grant-type:device_code",
    "urn:ietf:params:oauth:grant-type:token-exchange",
]
SigningAlg = Literal["RS256", "ES256", "EdDSA"]

# Scopes every realm has (OIDC Core §5.4, §11); a realm may redeclare them to change text.
STANDARD_SCOPES: dict[str, str] = {
    "openid": "Sign you in",
    "profile": "Your name and picture",
    "email": "Your email address",
    "offline_access": "Stay signed in (refresh tokens)",
}
DEFAULT_CLAIMS: dict[str, list[str]] = {
    "profile": ["name", "given_name", "family_name", "nickname", "picture", "locale", "updated_at"],
    "email": ["email", "email_verified"],
}


def absolute_url(value: str) -> str:
    parts = urlsplit(value)
    if not parts.scheme or (parts.scheme in ("http", "https") and not parts.netloc):
        raise ValueError(f"{value!r} is not an absolute URI")
    if parts.fragment or "#" in value:
        raise ValueError(f"{value!r} must not contain a fragment (RFC 6749 §3.1.2)")
    return value


def positive_duration(value: Any) -> Any:
    """Lifetimes and periods are positive: a zero token lifetime issues dead tokens, a
    zero window disables a limit."""
    if isinstance(value, timedelta) and value <= timedelta(0):
        raise ValueError("must be longer than zero")
    return value


DEFAULT_PORTS = {"http": 80, "https": 443}


def origin_of(uri: str) -> str | None:
    """The serialised origin (RFC 6454 §6.2) of an http(s) URI: `scheme://host[:port]`,
    lower-case, default port left out; None for other schemes (app-claimed `com.app:/`)."""
    parts = urlsplit(uri)
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS or not parts.hostname:
        return None
    try:
        port = parts.port
    except ValueError:
        return None
    host = parts.hostname.lower()
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    return f"{scheme}://{host}" + (f":{port}" if port and port != DEFAULT_PORTS[scheme] else "")


# --------------------------------------------------------------------------- idp.yaml


class Listen(Strict):
    host: Annotated[str, ENV] = "127.0.0.1"
    port: Annotated[int, ENV] = Field(4000, ge=0, le=65535)


class Storage(Strict):
    durable: Annotated[str, ENV] = "sqlite:///var/idp.sqlite3"
    ephemeral: Annotated[str, ENV] = "memory://"
    ephemeral_prefix: Annotated[str, ENV] = Field(
        "tessera:", pattern=r"^[A-Za-z0-9_.:{}-]{0,64}$",
        description="prefix of every Redis key (several deployments can share one Redis)",
    )

    @field_validator("durable")
    @classmethod
    def _durable_scheme(cls, value: str) -> str:
        if not re.match(r"^(sqlite|postgres|postgresql)://", value):
            raise ValueError("durable storage is sqlite:///path or postgresql://user@host/db")
        return value

    @field_validator("ephemeral")
    @classmethod
    def _ephemeral_scheme(cls, value: str) -> str:
        if not re.match(r"^(memory|redis|rediss)://", value):
            raise ValueError("ephemeral storage is memory:// or redis://host:6379/0")
        return value


class KeysSettings(Strict):
    """Where the key-encryption key comes from and how long verifiers may cache JWKS."""

    data_dir: Annotated[str, ENV] = "var"
    verifier_cache_ttl: Duration = timedelta(minutes=15)


class SmtpSettings(Strict):
    """The `smtp` sender. Write credentials as `${ENV}` references, never in clear."""

    host: Annotated[str, ENV] = "localhost"
    port: Annotated[int, ENV] = Field(587, ge=1, le=65535)
    starttls: bool = Field(True, description="upgrade with STARTTLS (port 587); refuse if the server cannot")
    tls: bool = Field(False, description="implicit TLS from the first byte (port 465)")
    username: Annotated[str | None, ENV] = None
    password: Annotated[SecretStr | None, SECRET] = None
    ca_file: Annotated[str | None, ENV] = Field(None, description="PEM bundle to trust instead of the system CAs")
    timeout: Duration = timedelta(seconds=15)


class OutboxSettings(Strict):
    """The `outbox` sender: one `.eml` file per message, and its links in the log."""

    directory: Annotated[str, ENV] = "var/outbox"


class MailSettings(Strict):
    """How mail leaves the server (`mail:` in idp.yaml). `type` picks a sender registered
    through the `tessera_register_mailers` hook: `outbox` (the embedded default), `smtp`,
    or a plugin's, which reads its own settings from `options`."""

    type: str = Field("outbox", pattern=NAME_PATTERN)
    sender: Annotated[str, ENV] = Field("Tessera <no-reply@localhost>", description="the From: address")
    smtp: SmtpSettings = SmtpSettings()
    outbox: OutboxSettings = OutboxSettings()
    options: Annotated[dict[str, Any], ENV] = Field(default_factory=dict, description="settings of a plugin sender")

    @field_validator("sender")
    @classmethod
    def _mailbox(cls, value: str) -> str:
        return mailbox(value)


class HttpSettings(Strict):
    """Deadlines of the HTTP listener (engine.web.server); run behind a proxy all the same."""

    idle_timeout: Duration = Field(
        timedelta(seconds=15), description="a connection must send a complete request head within this"
        " long of connecting or of its previous answer (slow heads and idle keep-alive connections end)")
    body_timeout: Duration = Field(timedelta(seconds=15), description="a request body must arrive within this")

    @field_validator("idle_timeout", "body_timeout")
    @classmethod
    def _positive(cls, value: timedelta) -> timedelta:
        if value.total_seconds() <= 0:
            raise ValueError("must be longer than zero")
        return value


class ServerConfig(Strict):
    base_url: Annotated[str, ENV] = "http://localhost:4000"
    listen: Listen = Listen()
    storage: Storage = Storage()
    realms: Annotated[str, ENV] = "realms/"
    root_realm: str | None = "default"
    keys: KeysSettings = KeysSettings()
    trusted_proxies: list[str] = Field(
        default_factory=list, max_length=256,
        description="CIDRs (or addresses) of the reverse proxies in front of the server: only a peer"
        " inside one of them is believed about X-Forwarded-For, walked from the right",
    )
    # Removed (issue 16): it believed the leftmost X-Forwarded-For value, which the client
    # writes. Kept only to refuse it with a message naming the replacement; not in the schema.
    trust_forwarded_for: SkipJsonSchema[Any] = Field(None, exclude=True)
    mail: MailSettings = MailSettings()
    http: HttpSettings = HttpSettings()

    @field_validator("trust_forwarded_for", mode="before")
    @classmethod
    def _removed_trust_forwarded_for(cls, value: Any) -> Any:
        raise ValueError("trust_forwarded_for is removed (it believed whatever the client wrote in"
                         " X-Forwarded-For); list your reverse proxies instead: trusted_proxies: [CIDR, ...]")

    @field_validator("trusted_proxies")
    @classmethod
    def _proxy_networks(cls, values: list[str]) -> list[str]:
        normalised = []
        for value in values:
            try:
                network = ipaddress.ip_network(value.strip())
            except ValueError:
                try:  # say what the operator probably meant when host bits are set
                    meant = ipaddress.ip_network(value.strip(), strict=False)
                except ValueError:
                    raise ValueError(f"{value!r} is not an IP address or CIDR (e.g. 10.0.0.0/8)") from None
                raise ValueError(f"{value!r} has host bits set; did you mean {meant}?") from None
            normalised.append(str(network))
        return normalised

    @cached_property
    def proxy_networks(self) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
        """`trusted_proxies` parsed, once per configuration (client_ip runs on every request)."""
        return tuple(ipaddress.ip_network(value) for value in self.trusted_proxies)

    @field_validator("base_url")
    @classmethod
    def _base_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError("base_url must be an absolute http(s) URL")
        if parts.query or parts.fragment:
            raise ValueError("base_url must not have a query or fragment (it becomes the issuer)")
        return value.rstrip("/")


# --------------------------------------------------------------------------- realm files


class Lifetimes(Strict):
    access_token: Duration = timedelta(minutes=10)
    id_token: Duration = timedelta(minutes=10)
    refresh_token: Duration = timedelta(days=45)
    auth_code: Duration = timedelta(minutes=5)
    # RFC 8628 §3.2 `expires_in`: a device code and its user code live this long.
    device_code: Duration = timedelta(minutes=10)
    session: Duration = timedelta(hours=12)
    email_verification: Duration = timedelta(hours=24)
    password_reset: Duration = timedelta(hours=1)
    # A browser session unused this long is over, whatever is left of `session` (its
    # absolute end). One hour: Keycloak's SSO Session Idle is 30 min, OWASP's session
    # guidance 15-30 min for sensitive and longer for low-risk apps; an IdP sits in front
    # of many apps whose users come back within the hour, so 1 h keeps SSO useful while a
    # forgotten browser is signed out well before the 12 h absolute end.
    session_idle: Duration = timedelta(hours=1)
    # An authorization request nobody has touched for this long is gone (its login and
    # consent pages answer "start again").
    pending_flow: Duration = timedelta(minutes=10)
    # A self-registered account whose email was never verified is removed this long after
    # it was made (operator-made, federated and verified accounts never are).
    unverified_account: Duration = timedelta(days=7)

    @field_validator("session_idle", "pending_flow", "unverified_account", "device_code")
    @classmethod
    def _lifetime_positive(cls, value: timedelta) -> timedelta:
        if value.total_seconds() < 1:
            raise ValueError("must be at least one second")
        return value

    @field_validator("*")
    @classmethod
    def _positive(cls, value: Any) -> Any:
        return positive_duration(value)


class Signing(Strict):
    algs: list[SigningAlg] = Field(default_factory=lambda: ["RS256", "EdDSA"], min_length=1)
    default_alg: SigningAlg = "RS256"
    rotate_every: Duration = timedelta(days=30)

    @field_validator("rotate_every")
    @classmethod
    def _positive(cls, value: Any) -> Any:
        return positive_duration(value)


class Scope(Strict):
    description: str = ""


class RateLimit(Strict):
    """`requests` per `per` window, counted in the ephemeral store (shared by instances)."""

    requests: int = Field(gt=0)
    per: Duration = timedelta(minutes=1)

    @field_validator("per")
    @classmethod
    def _positive(cls, value: Any) -> Any:
        return positive_duration(value)


class RateLimits(Strict):
    authorize_per_ip: RateLimit = RateLimit(requests=300)
    token_per_ip: RateLimit = RateLimit(requests=6000)
    login_per_ip: RateLimit = RateLimit(requests=60)
    login_per_account: RateLimit = RateLimit(requests=20, per=timedelta(minutes=15))
    register_per_ip: RateLimit = RateLimit(requests=20, per=timedelta(hours=1))
    password_reset_per_ip: RateLimit = RateLimit(requests=20, per=timedelta(hours=1))
    verification_resend_per_account: RateLimit = RateLimit(requests=3, per=timedelta(hours=1))
    mail_per_recipient: RateLimit = RateLimit(requests=5, per=timedelta(hours=1))
    # Where a secret is tried (issue 16 item 8). Failures are counted, successes are not, so
    # a working client never meets these; each also applies ten times over sixty windows
    # (20/min is also 200/h), so steady guessing is refused for longer and longer.
    client_auth_failures_per_ip: RateLimit = Field(
        RateLimit(requests=20), description="failed client authentications (token, introspection,"
        " revocation) from one address; past it every attempt from there is refused (429) for the window")
    client_auth_failures_per_client: RateLimit = Field(
        RateLimit(requests=100), description="failed authentications of one configured client, from anywhere")
    introspect_per_client: RateLimit = Field(
        RateLimit(requests=60000), description="introspection requests of one authenticated client")
    revoke_per_ip: RateLimit = Field(RateLimit(requests=600), description="revocation requests from one address")
    # RFC 8628 §5.1: user codes are short (20^8 ≈ 2.6e10), so the guesses at {issuer}/device
    # are counted per address and per realm; brute force is infeasible within a code's life.
    device_user_code_per_ip: RateLimit = Field(
        RateLimit(requests=20, per=timedelta(minutes=15)),
        description="user codes entered at /device from one address (right or wrong)")
    device_user_code_per_realm: RateLimit = Field(
        RateLimit(requests=1000, per=timedelta(minutes=15)),
        description="wrong user codes entered at /device from anywhere in the realm")
    device_authorization_per_ip: RateLimit = Field(
        RateLimit(requests=60), description="device authorization requests (/device/code) from one address")
    userinfo_failures_per_ip: RateLimit = Field(
        RateLimit(requests=120), description="userinfo requests with a bad or missing token from one address")


class LockoutPolicy(Strict):
    """Brute-force protection for one dimension (an account, or a client IP): after
    `free_failures` failed sign-ins within `window`, each attempt waits `first_delay`,
    doubling per failure up to `max_delay`; at `max_failures` the account (or IP) is
    locked for `lockout_for` (doubled for each further lockout within a day, at most 24 h)."""

    free_failures: int = Field(5, ge=0)
    first_delay: Duration = timedelta(seconds=1)
    max_delay: Duration = timedelta(seconds=5)
    max_failures: int = Field(20, ge=1)
    lockout_for: Duration = timedelta(minutes=15)
    window: Duration = timedelta(minutes=15)


class Lockout(Strict):
    """Brute-force protection of password sign-in (engine.accounts.lockout). `account` and
    `ip` count untrusted attempts; `device` is the small budget of an attempt from a browser
    that signed in to the account before (its device cookie, OWASP "device cookies"): such
    an attempt is not held back by the account's or the IP's lockout, only by its own.
    `device_cookie_for`: how long a browser stays trusted after its last sign-in."""

    account: LockoutPolicy = LockoutPolicy()
    ip: LockoutPolicy = LockoutPolicy(free_failures=10, max_failures=100)
    device: LockoutPolicy = LockoutPolicy(free_failures=3, max_failures=10)
    device_cookie_for: Duration = timedelta(days=90)


class RealmMail(Strict):
    """Per-realm mail settings; the sender itself is the server's (`mail:` in idp.yaml)."""

    sender: str | None = Field(None, description="From: address for this realm's mail")
    reply_to: str | None = None

    @field_validator("sender", "reply_to")
    @classmethod
    def _mailbox(cls, value: str | None) -> str | None:
        return None if value is None else mailbox(value)


class TokenExchangePolicy(Strict):
    """RFC 8693 for one client: which subject tokens it may exchange, for what audiences."""

    from_clients: list[str] = Field(
        default_factory=list,
        description="clients whose access tokens this client may exchange (a token with this client"
        " in its `aud` may be exchanged too)")
    audiences: list[str] = Field(min_length=1, description="audiences the exchanged token may be for")


class Client(Strict):
    client_id: str = Field(min_length=1)
    name: str | None = None
    type: Literal["public", "confidential"]
    secret: Annotated[SecretStr | None, SECRET] = Field(
        None, description="the client secret, always as a ${ENV} reference, never in clear"
    )
    secret_sha256: Annotated[str | None, ENV] = Field(
        None, pattern=r"^[0-9a-f]{64}$", description="hex SHA-256 of the client secret"
    )
    redirect_uris: list[str] = Field(default_factory=list)
    post_logout_redirect_uris: list[str] = Field(default_factory=list)
    client_uri: str | None = Field(
        None, description="the application's home page (RFC 7591 §2): the 'Continue to' link after a password"
        " reset or an email verification opened outside the sign-in that started it")
    web_origins: list[str] = Field(
        default_factory=list,
        description="origins (scheme://host[:port]) whose pages may call /token, /userinfo and /revoke,"
        " besides the origins of redirect_uris (engine.web.cors)",
    )
    grant_types: list[GrantType] = Field(
        default_factory=lambda: ["authorization_code", "refresh_token"]
    )
    scopes: list[str] = Field(default_factory=lambda: ["openid", "profile", "email"])
    audience: list[str] = Field(default_factory=list)
    consent: Literal["required", "implicit"] = "required"
    access_token_alg: SigningAlg | None = None
    id_token_alg: SigningAlg | None = None
    reuse_grace: Duration = timedelta(0)
    token_exchange: TokenExchangePolicy | None = None
    backchannel_logout_uri: str | None = Field(
        None, description="OIDC Back-Channel Logout 1.0: where a logout token is POSTed when a browser"
        " session in which this client got tokens ends (https; http on loopback only)")
    backchannel_logout_session_required: bool = True
    require_mfa: bool = Field(
        False, description="every sign-in for this client needs a second factor (the realm's MFA acr),"
        " whatever the client asks (engine.accounts.mfa)")

    @field_validator("backchannel_logout_uri")
    @classmethod
    def _backchannel(cls, value: str | None) -> str | None:
        if value is None:
            return None
        value = redirect_uri(absolute_url(value))
        if urlsplit(value).scheme.lower() not in ("http", "https"):
            raise ValueError(f"{value!r}: a back-channel logout URI is an https URL (http on loopback only)")
        return value

    @field_validator("redirect_uris", "post_logout_redirect_uris")
    @classmethod
    def _absolute(cls, values: list[str]) -> list[str]:
        return [redirect_uri(absolute_url(v)) for v in values]

    @field_validator("client_uri")
    @classmethod
    def _client_uri(cls, value: str | None) -> str | None:
        if value is None:
            return None
        value = redirect_uri(absolute_url(value))  # https, or http on loopback: never javascript: and the like
        if urlsplit(value).scheme.lower() not in ("http", "https"):
            raise ValueError(f"{value!r}: client_uri is a web page (https)")
        return value

    @field_validator("web_origins")
    @classmethod
    def _origins(cls, values: list[str]) -> list[str]:
        for value in values:
            if origin_of(value) != value:
                raise ValueError(f"{value!r} is not an origin: write it as a browser sends it, scheme://host[:port]"
                                 " in lower case, without a default port, a path or a trailing slash")
        return values


def _off_is_off(value: Any) -> Any:
    """YAML 1.1 reads a bare `off` as false: it means the policy `off`."""
    return "off" if value is False else value


FactorPolicy = Annotated[Literal["off", "optional", "required"], BeforeValidator(_off_is_off)]


MAX_REMEMBER_DEVICE = timedelta(days=400)


class MfaPolicy(Strict):
    """Strong sign-in of the realm (issue 20; engine.accounts.mfa). `off` (the default: a
    realm turns strong sign-in on in its file): the factor is not offered nor asked;
    `optional`: users may enrol it, and a user who did is asked for a second factor after a
    password or an upstream; `required`: a user without it enrols it right after the first
    factor, before any code is issued."""

    totp: FactorPolicy = Field("off", description="time-based one-time passwords (RFC 6238)")
    passkeys: FactorPolicy = Field("off", description="WebAuthn passkeys (discoverable credentials)")
    remember_device: Duration = Field(
        timedelta(0), description="the second factor is not asked again on this browser for this long"
        " after it was given (0 = asked at every sign-in)")
    recovery_codes: int = Field(10, ge=0, le=50, description="single-use recovery codes made at enrolment")

    @field_validator("remember_device")
    @classmethod
    def _remember_bounded(cls, value: timedelta) -> timedelta:
        if value > MAX_REMEMBER_DEVICE:  # what browsers keep a cookie at most (RFC 6265bis §5.5)
            raise ValueError("remember_device is at most 400d")
        return value

    @property
    def required(self) -> bool:
        """Every user must have a second factor."""
        return "required" in (self.totp, self.passkeys)

    @property
    def available(self) -> bool:
        """Some second factor can be enrolled in this realm."""
        return self.totp != "off" or self.passkeys != "off"


class ProviderSettings(Strict):
    """Base of every provider's settings; a plugin subclasses it with `type: Literal[...]`."""

    id: str = Field(pattern=NAME_PATTERN)
    type: str
    display_name: str | None = None


class RealmBase(Strict):
    name: str = Field(pattern=NAME_PATTERN)
    display_name: str | None = None
    logo_url: str | None = None
    templates: str | None = Field(None, description="directory of templates overriding the defaults")
    lifetimes: Lifetimes = Lifetimes()
    signing: Signing = Signing()
    scopes: dict[str, Scope] = Field(default_factory=dict)
    claims: dict[str, list[str]] = Field(default_factory=dict)
    clients: list[Client] = Field(default_factory=list)
    rate_limits: RateLimits = RateLimits()
    lockout: Lockout = Lockout()
    mail: RealmMail = RealmMail()
    mfa: MfaPolicy = MfaPolicy()
    refresh_requires_verified_email: bool = True
    refresh_requires_offline_access: bool = False
    max_sessions_per_user: int = Field(
        50, ge=1, le=10000,
        description="browser sessions one user may have at once in this realm; a new sign-in beyond it"
        " ends the oldest (engine.accounts.sessions)")

    @field_validator("logo_url")
    @classmethod
    def _logo(cls, value: str | None) -> str | None:
        return None if value is None else logo_url(value)

    @field_validator("templates")
    @classmethod
    def _templates(cls, value: str | None) -> str | None:
        return None if value is None else relative_directory(value)

    def all_scopes(self) -> dict[str, str]:
        scopes = dict(STANDARD_SCOPES)
        scopes.update({name: scope.description for name, scope in self.scopes.items()})
        return scopes

    def claims_for_scope(self) -> dict[str, list[str]]:
        claims = {k: list(v) for k, v in DEFAULT_CLAIMS.items()}
        claims.update(self.claims)
        return claims


def build_realm_model(provider_models: list[type[ProviderSettings]]) -> type[RealmBase]:
    """The realm model whose `providers` is the union of every installed provider type."""
    if provider_models:
        union: Any = Union[tuple(provider_models)]  # noqa: UP007 - built at run time
        provider: Any = Annotated[union, Field(discriminator="type")]
    else:
        provider = ProviderSettings
    return create_model("Realm", __base__=RealmBase, providers=(list[provider], []))
