"""JWT minting and verification (RFC 7519, RFC 7515 compact JWS; RFC 9068 for access tokens).

Signing is on the hot path of every `/token` request, so it is done here in a few lines
around `cryptography` (which makes the signature itself; no crypto primitive is written
here): the header segment is serialised once per (alg, kid, typ), the claims are
serialised by orjson (compact, UTF-8), and the key object joserfc holds signs directly.
The output is ordinary compact JWS, which joserfc (and any JOSE library) verifies.

Verification always passes an explicit algorithm allow-list (the realm's algs), so
`alg: none` and algorithm substitution are refused, and checks `exp` itself. The fast
path handles the realm's own tokens (a known `kid`, a key of the header's `alg`, no `crit`);
anything else goes through joserfc's `decode`, which applies the same allow-list.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

import orjson
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature, encode_dss_signature
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from engine.errors import InvalidToken

_PKCS1 = padding.PKCS1v15()
_SHA256 = hashes.SHA256()
_ECDSA_SHA256 = ec.ECDSA(_SHA256)


def _b64(data: bytes) -> bytes:
    return base64.urlsafe_b64encode(data).rstrip(b"=")


def _unb64(segment: str) -> bytes:
    # RFC 7515 §2: base64url without padding; reject anything outside the alphabet.
    return base64.b64decode(segment + "=" * (-len(segment) % 4), altchars=b"-_", validate=True)


@lru_cache(maxsize=4096)
def _header_segment(alg: str, kid: str, typ: str) -> bytes:
    return _b64(orjson.dumps({"alg": alg, "kid": kid, "typ": typ}))


def _sign_rs256(private_key: Any, data: bytes) -> bytes:
    return private_key.sign(data, _PKCS1, _SHA256)


def _sign_es256(private_key: Any, data: bytes) -> bytes:
    # RFC 7518 §3.4: the JWS signature is R || S, 32 bytes each, not DER.
    r, s = decode_dss_signature(private_key.sign(data, _ECDSA_SHA256))
    return r.to_bytes(32, "big") + s.to_bytes(32, "big")


def _sign_eddsa(private_key: Any, data: bytes) -> bytes:
    return private_key.sign(data)


_SIGNERS = {"RS256": _sign_rs256, "ES256": _sign_es256, "EdDSA": _sign_eddsa}


def sign(claims: dict[str, Any], key: Any, kid: str, alg: str, *, typ: str = "JWT") -> str:
    """Compact JWS of `claims` with `key` (a joserfc key of the realm) under `alg`/`kid`."""
    signer = _SIGNERS.get(alg)
    if signer is None:
        raise ValueError(f"unsupported signing algorithm {alg}")
    signing_input = _header_segment(alg, kid, typ) + b"." + _b64(orjson.dumps(claims))
    return (signing_input + b"." + _b64(signer(key.private_key, signing_input))).decode("ascii")


# --------------------------------------------------------------------------- verification


def _key_alg(public_key: Any) -> str | None:
    if isinstance(public_key, rsa.RSAPublicKey):
        return "RS256"
    if isinstance(public_key, ec.EllipticCurvePublicKey) and isinstance(public_key.curve, ec.SECP256R1):
        return "ES256"
    if isinstance(public_key, ed25519.Ed25519PublicKey):
        return "EdDSA"
    return None


def verifiers(keys: KeySet) -> dict[str, tuple[str, Any]]:
    """kid -> (alg, `cryptography` public key) of every key in `keys` that the fast path
    can check; build once per key set (engine.tokens.keys keeps it with the set)."""
    found: dict[str, tuple[str, Any]] = {}
    for key in keys.keys:
        public_key = key.public_key
        alg = _key_alg(public_key)
        declared = key.get("alg") if hasattr(key, "get") else None
        if declared == "Ed25519":
            declared = "EdDSA"
        if alg is None or key.kid is None or (declared is not None and declared != alg):
            continue
        found[key.kid] = (alg, public_key)
    return found


def _signature_ok(alg: str, public_key: Any, signature: bytes, data: bytes) -> bool:
    try:
        if alg == "RS256":
            public_key.verify(signature, data, _PKCS1, _SHA256)
        elif alg == "ES256":
            if len(signature) != 64:
                return False
            r, s = int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
            public_key.verify(encode_dss_signature(r, s), data, _ECDSA_SHA256)
        elif alg == "EdDSA":
            public_key.verify(signature, data)
        else:
            return False
    except InvalidSignature:
        return False
    return True


def _fast_decode(
    token: str, fast_keys: Mapping[str, tuple[str, Any]], algorithms: list[str]
) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """(header, claims) of a token signed by one of `fast_keys`; None: use the slow path.
    Raises InvalidToken for a token that is certainly bad."""
    parts = token.split(".")
    if len(parts) != 3:
        raise InvalidToken("the token is malformed or its signature is invalid")
    try:
        header = json.loads(_unb64(parts[0]))
    except (ValueError, binascii.Error):
        raise InvalidToken("the token is malformed or its signature is invalid") from None
    if not isinstance(header, dict):
        raise InvalidToken("the token is malformed or its signature is invalid")
    alg, kid = header.get("alg"), header.get("kid")
    if not isinstance(kid, str) or kid not in fast_keys or "crit" in header or set(header) - _PLAIN_HEADER:
        return None  # unusual tokens: joserfc decides
    if alg not in algorithms:
        raise InvalidToken("the token is malformed or its signature is invalid")
    key_alg, public_key = fast_keys[kid]
    if key_alg != alg:
        raise InvalidToken("the token is malformed or its signature is invalid")
    try:
        signature = _unb64(parts[2])
        signed = (parts[0] + "." + parts[1]).encode("ascii")
    except (ValueError, binascii.Error, UnicodeEncodeError):
        raise InvalidToken("the token is malformed or its signature is invalid") from None
    if not _signature_ok(alg, public_key, signature, signed):
        raise InvalidToken("the token is malformed or its signature is invalid")
    try:
        claims = json.loads(_unb64(parts[1]))
    except (ValueError, binascii.Error):
        raise InvalidToken("the token is malformed or its signature is invalid") from None
    if not isinstance(claims, dict):
        raise InvalidToken("the token is malformed or its signature is invalid")
    return header, claims


_PLAIN_HEADER = frozenset({"alg", "kid", "typ"})


def decode_verified(
    token: str,
    keys: KeySet,
    algorithms: list[str],
    fast_keys: Mapping[str, tuple[str, Any]] | None = None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(header, claims) of a token whose signature checks with `keys` under an allowed
    alg; InvalidToken otherwise. No claim is checked here (see `check_claims`)."""
    decoded = _fast_decode(token, fast_keys, algorithms) if fast_keys else None
    if decoded is None:
        try:
            result = jwt.decode(token, keys, algorithms=algorithms)
        except (JoseError, ValueError, TypeError, KeyError) as exc:
            raise InvalidToken("the token is malformed or its signature is invalid") from exc
        decoded = result.header, result.claims
    return decoded


def check_claims(
    header: dict[str, Any],
    claims: dict[str, Any],
    *,
    now: int,
    issuer: str,
    typ: str | None = None,
    leeway: int = 0,
    check_exp: bool = True,
) -> dict[str, Any]:
    """`typ` (if given), `iss` and `exp` of a verified token; InvalidToken otherwise."""
    if typ is not None and str(header.get("typ", "")).lower() not in (typ, f"application/{typ}"):
        raise InvalidToken("wrong token type")
    if claims.get("iss") != issuer:
        raise InvalidToken("the token was issued by another issuer")
    exp = claims.get("exp")
    if not isinstance(exp, int | float) or isinstance(exp, bool) or (check_exp and exp + leeway <= now):
        raise InvalidToken("the token has expired")
    return claims


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
    fast_keys: Mapping[str, tuple[str, Any]] | None = None,
) -> dict[str, Any]:
    """Signature, allowed alg, `typ` (if given), `iss` and `exp`; InvalidToken otherwise.
    `fast_keys` (from `verifiers(keys)`) lets the realm's own tokens skip joserfc."""
    header, claims = decode_verified(token, keys, algorithms, fast_keys)
    return check_claims(header, claims, now=now, issuer=issuer, typ=typ, leeway=leeway, check_exp=check_exp)
