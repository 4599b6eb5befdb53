"""One exception hierarchy for protocol errors (RFC 6749 §5.2, RFC 6750 §3.1).

Subclasses set only `error` and `status`; one middleware (`engine.web.middleware`) renders
them as JSON on API endpoints and as an HTML page on browser endpoints.
"""

from __future__ import annotations

# Error codes, one place (RFC 6749 §4.1.2.1 and §5.2, RFC 6750 §3.1, RFC 7009 §2.2.1,
# OIDC Core §3.1.2.6, RFC 8628 §3.5).
INVALID_REQUEST = "invalid_request"
INVALID_CLIENT = "invalid_client"
INVALID_GRANT = "invalid_grant"
UNAUTHORIZED_CLIENT = "unauthorized_client"
UNSUPPORTED_GRANT_TYPE = "unsupported_grant_type"
UNSUPPORTED_RESPONSE_TYPE = "unsupported_response_type"
INVALID_SCOPE = "invalid_scope"
INVALID_TARGET = "invalid_target"
ACCESS_DENIED = "access_denied"
SERVER_ERROR = "server_error"
TEMPORARILY_UNAVAILABLE = "temporarily_unavailable"
INVALID_TOKEN = "invalid_token"
INSUFFICIENT_SCOPE = "insufficient_scope"
UNSUPPORTED_TOKEN_TYPE = "unsupported_token_type"
LOGIN_REQUIRED = "login_required"
CONSENT_REQUIRED = "consent_required"
INTERACTION_REQUIRED = "interaction_required"
NOT_FOUND = "not_found"
SLOW_DOWN = "slow_down"
RATE_LIMITED = "rate_limited"
AUTHORIZATION_PENDING = "authorization_pending"  # RFC 8628 §3.5
EXPIRED_TOKEN = "expired_token"  # RFC 8628 §3.5


MAX_DESCRIPTION = 200  # what went wrong, not an echo of the request


def description_text(description: str) -> str:
    """RFC 6749 §5.2: `error_description` is %x20-21 / %x23-5B / %x5D-7E (no `"`, no `\\`,
    nothing outside printable ASCII); a description that quotes the request (a grant type,
    a scope) is made to fit and cut to MAX_DESCRIPTION characters."""
    text = "".join(c if " " <= c <= "~" and c not in '"\\' else "?" for c in description)
    return text if len(text) <= MAX_DESCRIPTION else text[:MAX_DESCRIPTION - 3] + "..."


class OAuthError(Exception):
    """Base of every protocol error. `description` is safe to show: never put a secret in it."""

    error: str = INVALID_REQUEST
    status: int = 400

    def __init__(self, description: str | None = None, *, headers: dict[str, str] | None = None):
        super().__init__(description or self.error)
        self.description = description
        self.headers = headers or {}

    def body(self) -> dict[str, str]:
        body = {"error": self.error}
        if self.description:
            body["error_description"] = description_text(self.description)
        return body


class InvalidRequest(OAuthError):
    error = INVALID_REQUEST


class InvalidClient(OAuthError):
    """RFC 6749 §5.2: 401 with a WWW-Authenticate challenge."""

    error = INVALID_CLIENT
    status = 401

    def __init__(self, description: str | None = None, *, scheme: str = "Basic", realm: str = "tessera"):
        super().__init__(description, headers={"WWW-Authenticate": f'{scheme} realm="{realm}"'})


class InvalidGrant(OAuthError):
    error = INVALID_GRANT


class UnauthorizedClient(OAuthError):
    error = UNAUTHORIZED_CLIENT


class UnsupportedGrantType(OAuthError):
    error = UNSUPPORTED_GRANT_TYPE


class UnsupportedResponseType(OAuthError):
    error = UNSUPPORTED_RESPONSE_TYPE


class InvalidScope(OAuthError):
    error = INVALID_SCOPE


class InvalidTarget(OAuthError):
    error = INVALID_TARGET


class AccessDenied(OAuthError):
    error = ACCESS_DENIED
    status = 403


class LoginRequired(OAuthError):
    error = LOGIN_REQUIRED


class ConsentRequired(OAuthError):
    error = CONSENT_REQUIRED


class InteractionRequired(OAuthError):
    error = INTERACTION_REQUIRED


class InvalidToken(OAuthError):
    """RFC 6750 §3.1: 401 with `WWW-Authenticate: Bearer error="invalid_token"`."""

    error = INVALID_TOKEN
    status = 401

    def __init__(self, description: str | None = None):
        challenge = f'Bearer error="{self.error}"'
        if description:
            challenge += f', error_description="{description_text(description)}"'
        super().__init__(description, headers={"WWW-Authenticate": challenge})


class BearerTokenMissing(InvalidToken):
    """RFC 6750 §3.1: no access token was sent, so the challenge carries no error code
    (`WWW-Authenticate: Bearer realm="..."`); the JSON body still says `invalid_token`."""

    def __init__(self, realm: str, description: str = "an access token is required"):
        OAuthError.__init__(self, description, headers={"WWW-Authenticate": f'Bearer realm="{realm}"'})


class InsufficientScope(OAuthError):
    """RFC 6750 §3.1: the token is valid but lacks `scope`: 403 with a challenge naming it."""

    error = INSUFFICIENT_SCOPE
    status = 403

    def __init__(self, scope: str, description: str | None = None):
        challenge = f'Bearer error="{self.error}", scope="{scope}"'
        super().__init__(description, headers={"WWW-Authenticate": challenge})


class NotFound(OAuthError):
    error = NOT_FOUND
    status = 404


class RateLimited(OAuthError):
    error = RATE_LIMITED
    status = 429

    def __init__(self, retry_after: int, description: str = "too many requests"):
        super().__init__(description, headers={"Retry-After": str(max(1, int(retry_after)))})


class ServerError(OAuthError):
    error = SERVER_ERROR
    status = 500


class TemporarilyUnavailable(OAuthError):
    """A store is unreachable: fail fast with 503 rather than hang."""

    error = TEMPORARILY_UNAVAILABLE
    status = 503


class AuthorizationPending(OAuthError):
    """RFC 8628 §3.5: the user has not yet approved or denied the device request."""

    error = AUTHORIZATION_PENDING


class SlowDown(OAuthError):
    """RFC 8628 §3.5: polling too fast; the interval grows by 5 seconds."""

    error = SLOW_DOWN


class ExpiredToken(OAuthError):
    """RFC 8628 §3.5: the device_code has expired."""

    error = EXPIRED_TOKEN


class DeviceAccessDenied(OAuthError):
    """RFC 8628 §3.5 `access_denied` at the token endpoint: a 400 like every §5.2 error
    (AccessDenied is the 403 of the browser pages)."""

    error = ACCESS_DENIED
