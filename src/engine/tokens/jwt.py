"""JWT minting and verification over joserfc (RFC 7519, RFC 9068 for access tokens).

Verification always passes an explicit algorithm allow-list (the realm's algs), so
`alg: none` and algorithm substitution are refused, and checks `exp` itself (joserfc's
`decode` checks only the signature).
"""

from __future__ import annotations

from typing import Any

from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from engine.errors import InvalidToken


def sign(claims: dict[str, Any], key: Any, kid: str, alg: str, *, typ: str = "JWT") -> str:
    return jwt.encode({"alg": alg, "kid": kid, "typ": typ}, claims, key, algorithms=[alg])


def verify(
    token: str,
    keys: KeySet,
    algorithms: list[str],
    *,
    now: int,
    issuer: str,
    typ: str | None = None,
    leeway: int = 0,
    check_exp: bool = True,
) -> dict[str, Any]:
    """Signature, allowed alg, `typ` (if given), `iss` and `exp`; InvalidToken otherwise."""
    try:
        decoded = jwt.decode(token, keys, algorithms=algorithms)
    except (JoseError, ValueError, TypeError, KeyError) as exc:
        raise InvalidToken("the token is malformed or its signature is invalid") from exc
    header, claims = decoded.header, decoded.claims
    if typ is not None and str(header.get("typ", "")).lower() not in (typ, f"application/{typ}"):
        raise InvalidToken("wrong token type")
    if claims.get("iss") != issuer:
        raise InvalidToken("the token was issued by another issuer")
    exp = claims.get("exp")
    if not isinstance(exp, int | float) or (check_exp and exp + leeway <= now):
        raise InvalidToken("the token has expired")
    return claims
