"""JWT signing and verification (RFC 7515 compact JWS, RFC 7518 §3.3/§3.4, RFC 8037): our
fast paths must produce and accept exactly what a JOSE library does, and refuse the rest."""

from __future__ import annotations

import base64
import json

import pytest
from joserfc import jwt as jose_jwt
from joserfc.jwk import KeySet

from engine.errors import InvalidToken
from engine.tokens import jwt
from engine.tokens.keys import generate_key

pytestmark = pytest.mark.filterwarnings("ignore:EdDSA is deprecated")

ALGS = ["RS256", "ES256", "EdDSA"]
NOW = 1_800_000_000
CLAIMS = {"iss": "https://idp.example", "sub": "svc", "aud": "api", "iat": NOW, "exp": NOW + 600, "jti": "j1"}


@pytest.fixture(scope="module")
def keys():
    private = {alg: generate_key(alg) for alg in ALGS}
    public = KeySet.import_key_set(KeySet(list(private.values())).as_dict())
    return private, public, jwt.verifiers(public)


def segment(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


@pytest.mark.parametrize("alg", ALGS)
def test_signed_tokens_verify_with_joserfc_and_both_paths(keys, alg):
    private, public, fast = keys
    key = private[alg]
    token = jwt.sign(dict(CLAIMS), key, key.kid, alg, typ="at+jwt")
    decoded = jose_jwt.decode(token, public, algorithms=[alg])
    assert decoded.claims == CLAIMS
    assert decoded.header == {"alg": alg, "kid": key.kid, "typ": "at+jwt"}
    for fast_keys in (fast, None):
        assert jwt.verify(token, public, ALGS, now=NOW, issuer=CLAIMS["iss"], typ="at+jwt",
                          fast_keys=fast_keys) == CLAIMS


@pytest.mark.parametrize("alg", ALGS)
def test_tampered_payload_or_signature_is_refused(keys, alg):
    private, public, fast = keys
    key = private[alg]
    header, payload, signature = jwt.sign(dict(CLAIMS), key, key.kid, alg).split(".")
    forged_payload = segment({**CLAIMS, "sub": "admin"})
    forged_signature = signature[:-4] + ("AAAA" if not signature.endswith("AAAA") else "BBBB")
    for token in (f"{header}.{forged_payload}.{signature}", f"{header}.{payload}.{forged_signature}",
                  f"{header}.{payload}.", f"{header}.{payload}", "not-a-jwt"):
        for fast_keys in (fast, None):
            with pytest.raises(InvalidToken):
                jwt.verify(token, public, ALGS, now=NOW, issuer=CLAIMS["iss"], fast_keys=fast_keys)


def test_algorithm_substitution_and_none_are_refused(keys):
    """RFC 8725 §2.1, §3.1: the header's alg must be allowed and match the key's type."""
    private, public, fast = keys
    rsa = private["RS256"]
    token = jwt.sign(dict(CLAIMS), rsa, rsa.kid, "RS256")
    _, payload, signature = token.split(".")
    swapped = segment({"alg": "ES256", "kid": rsa.kid, "typ": "JWT"})
    unsigned = segment({"alg": "none", "kid": rsa.kid})
    for forged in (f"{swapped}.{payload}.{signature}", f"{unsigned}.{payload}."):
        with pytest.raises(InvalidToken):
            jwt.verify(forged, public, ALGS, now=NOW, issuer=CLAIMS["iss"], fast_keys=fast)
    with pytest.raises(InvalidToken):  # a good token of an alg the realm does not allow
        jwt.verify(token, public, ["ES256"], now=NOW, issuer=CLAIMS["iss"], fast_keys=fast)


def test_unknown_kid_or_extra_header_goes_through_joserfc(keys):
    private, public, fast = keys
    other = generate_key("RS256")
    foreign = jwt.sign(dict(CLAIMS), other, other.kid, "RS256")
    with pytest.raises(InvalidToken):
        jwt.verify(foreign, public, ALGS, now=NOW, issuer=CLAIMS["iss"], fast_keys=fast)
    ec = private["ES256"]
    header = segment({"alg": "ES256", "kid": ec.kid, "crit": ["exp"], "exp": 1})
    good = jwt.sign(dict(CLAIMS), ec, ec.kid, "ES256")
    with pytest.raises(InvalidToken):
        jwt.verify(header + good[good.index("."):], public, ALGS, now=NOW, issuer=CLAIMS["iss"], fast_keys=fast)


def test_expiry_issuer_and_type_are_checked(keys):
    private, public, fast = keys
    key = private["EdDSA"]
    token = jwt.sign(dict(CLAIMS), key, key.kid, "EdDSA", typ="at+jwt")
    with pytest.raises(InvalidToken):
        jwt.verify(token, public, ALGS, now=NOW + 600, issuer=CLAIMS["iss"], fast_keys=fast)
    with pytest.raises(InvalidToken):
        jwt.verify(token, public, ALGS, now=NOW, issuer="https://other.example", fast_keys=fast)
    with pytest.raises(InvalidToken):
        jwt.verify(token, public, ALGS, now=NOW, issuer=CLAIMS["iss"], typ="jwt", fast_keys=fast)
