"""RFC 7636: Proof Key for Code Exchange. Only S256 is accepted (`plain` offers no
protection against a leaked authorization request)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re

from engine.errors import InvalidGrant, InvalidRequest

# §4.1: 43-128 characters of [A-Z] / [a-z] / [0-9] / "-" / "." / "_" / "~"
VERIFIER = re.compile(r"^[A-Za-z0-9\-._~]{43,128}$")
CHALLENGE = re.compile(r"^[A-Za-z0-9\-_]{43}$")  # base64url(SHA-256), no padding


def s256(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def check_challenge(challenge: str | None, method: str | None, *, required: bool) -> str | None:
    """Validate the authorization request's challenge (§4.3); return it or None."""
    if challenge is None:
        if method is not None:
            raise InvalidRequest("code_challenge_method without code_challenge")
        if required:
            raise InvalidRequest("PKCE is required for this client: send code_challenge with S256")
        return None
    if (method or "plain") != "S256":
        raise InvalidRequest("code_challenge_method must be S256")
    if not CHALLENGE.match(challenge):
        raise InvalidRequest("code_challenge must be the base64url SHA-256 of the verifier")
    return challenge


def verify(challenge: str | None, verifier: str | None) -> None:
    """§4.6: the token request's verifier must hash to the stored challenge."""
    if challenge is None:
        if verifier is not None:
            raise InvalidGrant("code_verifier sent but the authorization request had no code_challenge")
        return
    if verifier is None:
        raise InvalidGrant("code_verifier is required")
    if not VERIFIER.match(verifier) or not hmac.compare_digest(s256(verifier), challenge):
        raise InvalidGrant("code_verifier does not match the code_challenge")
