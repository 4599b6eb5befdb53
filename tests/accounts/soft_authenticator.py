"""A software WebAuthn authenticator for HTTP-level tests (the browser tests use Chromium's
virtual authenticator): an ES256 key, `none` attestation (WebAuthn Level 3 §8.7), the
authenticator data of §6.1 and the client data of §5.8.1, built from the options the
server gives, with knobs to break one thing at a time."""

from __future__ import annotations

import base64
import hashlib
import json
import os
from typing import Any

import cbor2
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

UP, UV, AT = 0x01, 0x04, 0x40  # §6.1 flags: user present, user verified, attested credential data


def b64u(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64u(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class SoftAuthenticator:
    def __init__(self, origin: str, rp_id: str) -> None:
        self.origin, self.rp_id = origin, rp_id
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.credential_id = os.urandom(16)
        self.sign_count = 0
        self.user_handle: bytes | None = None

    def _cose_key(self) -> bytes:
        numbers = self.key.public_key().public_numbers()
        return cbor2.dumps({1: 2, 3: -7, -1: 1, -2: numbers.x.to_bytes(32, "big"), -3: numbers.y.to_bytes(32, "big")})

    def _client_data(self, kind: str, challenge: str, origin: str | None) -> bytes:
        return json.dumps({"type": kind, "challenge": challenge, "origin": origin or self.origin,
                           "crossOrigin": False}).encode()

    def create(self, public_key: dict[str, Any], *, verified: bool = True, origin: str | None = None) -> str:
        """The JSON of `navigator.credentials.create()` for these options."""
        self.user_handle = unb64u(public_key["user"]["id"])
        flags = UP | AT | (UV if verified else 0)
        auth_data = (hashlib.sha256(public_key["rp"]["id"].encode()).digest() + bytes([flags])
                     + self.sign_count.to_bytes(4, "big") + bytes(16)
                     + len(self.credential_id).to_bytes(2, "big") + self.credential_id + self._cose_key())
        attestation = cbor2.dumps({"fmt": "none", "attStmt": {}, "authData": auth_data})
        return json.dumps({
            "id": b64u(self.credential_id), "rawId": b64u(self.credential_id), "type": "public-key",
            "clientExtensionResults": {},
            "response": {"clientDataJSON": b64u(self._client_data("webauthn.create", public_key["challenge"], origin)),
                         "attestationObject": b64u(attestation), "transports": ["internal"]}})

    def get(self, public_key: dict[str, Any], *, verified: bool = True, origin: str | None = None,
            counter: int | None = None, user_handle: bytes | None = None) -> str:
        """The JSON of `navigator.credentials.get()`: the counter goes up by one (or is `counter`)."""
        self.sign_count = self.sign_count + 1 if counter is None else counter
        flags = UP | (UV if verified else 0)
        auth_data = (hashlib.sha256(public_key.get("rpId", self.rp_id).encode()).digest() + bytes([flags])
                     + self.sign_count.to_bytes(4, "big"))
        client_data = self._client_data("webauthn.get", public_key["challenge"], origin)
        signature = self.key.sign(auth_data + hashlib.sha256(client_data).digest(), ec.ECDSA(hashes.SHA256()))
        handle = user_handle if user_handle is not None else self.user_handle
        return json.dumps({
            "id": b64u(self.credential_id), "rawId": b64u(self.credential_id), "type": "public-key",
            "clientExtensionResults": {},
            "response": {"clientDataJSON": b64u(client_data), "authenticatorData": b64u(auth_data),
                         "signature": b64u(signature), "userHandle": b64u(handle or b"")}})
