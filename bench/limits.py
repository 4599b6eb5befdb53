"""The machine's limits, measured through Tessera's own code on the server's core:

- `sign ALG`: JWTs/s from `engine.tokens.jwt.sign` with a key from
  `engine.tokens.keys.generate_key` (the signature is the floor of a `/token` request);
- `argon2`: password verifications/s with the realm's default argon2id parameters
  (the password plugin's `Argon2Hasher()`, OWASP m=19456 KiB, t=2, p=1), one thread,
  as many as the one server core can do.

Prints one JSON line: {"rate": ..., "runs": [...]}.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable


def measure(operation: Callable[[], object], seconds: float, runs: int) -> list[float]:
    for _ in range(20):  # warm-up: first calls pay for imports and caches
        operation()
    rates = []
    for _ in range(runs):
        count, started = 0, time.perf_counter()
        while (elapsed := time.perf_counter() - started) < seconds:
            operation()
            count += 1
        rates.append(count / elapsed)
    return rates


def sign_operation(alg: str) -> Callable[[], object]:
    from engine.tokens import jwt
    from engine.tokens.keys import generate_key

    key = generate_key(alg)
    now = int(time.time())
    claims = {
        "iss": "http://127.0.0.1:4100/realms/bench", "sub": "svc-rs256", "aud": "https://api.bench.example",
        "client_id": "svc-rs256", "scope": "api.read", "iat": now, "exp": now + 600,
        "jti": "0123456789abcdefghijkl",
    }

    def operation() -> object:
        # A fresh dict per call, as a request builds one.
        return jwt.sign(dict(claims), key, key.kid, alg, typ="at+jwt")

    return operation


def argon2_operation() -> Callable[[], object]:
    from plugins.password.hasher import Argon2Hasher

    hasher = Argon2Hasher()
    stored = hasher.hash("correct horse battery staple")

    def operation() -> object:
        if not hasher.verify(stored, "correct horse battery staple"):
            raise SystemExit("argon2 verify failed")
        return True

    return operation


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("what", choices=["sign", "argon2"])
    parser.add_argument("alg", nargs="?", default="RS256")
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args(argv)
    operation = sign_operation(args.alg) if args.what == "sign" else argon2_operation()
    rates = measure(operation, args.seconds, args.runs)
    sys.stdout.write(json.dumps({"rate": statistics.median(rates), "runs": rates}) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
