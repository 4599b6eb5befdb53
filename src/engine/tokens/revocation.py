"""What makes an access token revoked before its `exp`, kept in the ephemeral store so
every instance sees it (RFC 7009 §2.1: revoking a refresh token SHOULD also invalidate
the access tokens of the same grant):

- its own `jti`, deny-listed (the revocation endpoint; a replayed authorization code);
- its grant: access tokens minted from a refresh-token family carry `grant_id` (the
  family's id), so revoking the family (the revocation endpoint, reuse detection, a
  replayed code) revokes them all;
- its browser session: access tokens of a signed-in user carry `sid`, so RP-initiated
  logout revokes them with the session's families;
- its user: a password reset ends everything the user was given before it
  (`user_cutoff_key`, shared with engine.accounts.sessions, which ends the browser
  sessions with the same marker). The cutoff is a precise time and `iat` is whole
  seconds, so access tokens also carry their issue time in milliseconds
  (`ISSUED_MS_CLAIM`, a private claim, RFC 7519 §4.3) and are compared on it: a token
  minted in the same second but before the cutoff is revoked, one minted after it is
  not. (A token without the claim, minted before it existed, is compared on `iat`:
  revoked if issued in the cutoff's second, the safe side.)

One round trip reads every entry that concerns a token (`keys_for`), and each instance
trusts a "not revoked" answer for `REVOCATION_CHECK_TTL` (engine.tokens.issue).
"""

from __future__ import annotations

from typing import Any

GRANT_CLAIM = "grant_id"
ISSUED_MS_CLAIM = "iat_ms"  # the access token's issue time in milliseconds (see above)


def denied_jti_key(realm: str, jti: str) -> str:
    return f"{realm}:jti:{jti}"


def denied_grant_key(realm: str, grant_id: str) -> str:
    return f"{realm}:grant-revoked:{grant_id}"


def denied_session_key(realm: str, sid: str) -> str:
    return f"{realm}:sid-revoked:{sid}"


def user_cutoff_key(realm: str, user_id: str) -> str:
    """`{"up_to": t}`: sessions and access tokens of the user from before `t` are over."""
    return f"{realm}:sess-ended:{user_id}"


def keys_for(realm: str, claims: dict[str, Any]) -> list[str]:
    """The entries that could revoke this token, its `jti` first."""
    keys = [denied_jti_key(realm, claims["jti"])]
    grant_id, sid, subject = claims.get(GRANT_CLAIM), claims.get("sid"), claims.get("sub")
    if isinstance(grant_id, str):
        keys.append(denied_grant_key(realm, grant_id))
    if isinstance(sid, str):
        keys.append(denied_session_key(realm, sid))
    if isinstance(subject, str) and subject != claims.get("client_id"):  # a user's token
        keys.append(user_cutoff_key(realm, subject))
    return keys


def revoked_by(claims: dict[str, Any], entries: list[dict[str, Any] | None]) -> bool:
    """Whether any entry read for `keys_for(claims)` revokes the token."""
    for entry in entries:
        if entry is None:
            continue
        up_to = entry.get("up_to")
        if up_to is None or issued_at(claims) <= up_to:
            return True
    return False


def issued_at(claims: dict[str, Any]) -> float:
    """When the token was minted, as precisely as it says (seconds)."""
    issued_ms = claims.get(ISSUED_MS_CLAIM)
    if isinstance(issued_ms, int) and not isinstance(issued_ms, bool):
        return issued_ms / 1000
    return claims.get("iat", 0)
