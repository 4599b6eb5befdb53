"""Load client for the multi-step cases wrk cannot drive: password login (authorize →
login page → login POST → code → token) and refresh-token rotation.

Run pinned to the load-generator core by `bench/bench.py`; prints one JSON line.

    loadgen.py login    --base URL --duration S --concurrency N [...]
    loadgen.py families --base URL --count 64 --out tokens.json [...]
    loadgen.py refresh  --base URL --tokens tokens.json --duration S
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import json
import re
import secrets
import sys
import time
from html import unescape
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import aiohttp

HIDDEN = re.compile(r'<input type="hidden" name="([^"]+)" value="([^"]*)"')
ACTION = re.compile(r'<form method="post" action="([^"]+)"')


def basic(client_id: str, secret: str) -> str:
    return "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()


def percentile(values: list[float], pct: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * pct / 100))]


class Browser:
    """One user agent: its own cookies, on a shared keep-alive connector."""

    def __init__(self, http: aiohttp.ClientSession):
        self.http = http
        self.cookies: dict[str, str] = {}

    def _headers(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        headers = dict(extra or {})
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        return headers

    def _keep(self, response: aiohttp.ClientResponse) -> None:
        for header in response.headers.getall("Set-Cookie", []):
            jar: SimpleCookie = SimpleCookie()
            jar.load(header)
            for name, morsel in jar.items():
                self.cookies[name] = morsel.value

    async def get(self, url: str) -> tuple[int, str, str]:
        async with self.http.get(url, headers=self._headers(), allow_redirects=False) as response:
            self._keep(response)
            return response.status, response.headers.get("Location", ""), await response.text()

    async def post(self, url: str, data: dict[str, str]) -> tuple[int, str, str]:
        async with self.http.post(url, data=data, headers=self._headers(), allow_redirects=False) as response:
            self._keep(response)
            return response.status, response.headers.get("Location", ""), await response.text()


async def login_once(http: aiohttp.ClientSession, args: argparse.Namespace, user: int = 0) -> dict[str, Any]:
    """The whole browser + back-channel flow as user number `user`; the token response."""
    browser = Browser(http)
    issuer = f"{args.base}/realms/{args.realm}"
    verifier = secrets.token_urlsafe(32)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    query = urlencode({
        "response_type": "code", "client_id": args.client, "redirect_uri": args.redirect_uri,
        "scope": args.scope, "state": secrets.token_urlsafe(8), "nonce": secrets.token_urlsafe(8),
        "code_challenge": challenge, "code_challenge_method": "S256",
    })
    status, location, body = await browser.get(f"{issuer}/authorize?{query}")
    if status != 303 or "/login" not in location:
        raise RuntimeError(f"authorize: {status} {location} {body[:200]}")
    status, _, page = await browser.get(location if location.startswith("http") else args.base + location)
    if status != 200:
        raise RuntimeError(f"login page: {status}")
    fields = {name: unescape(value) for name, value in HIDDEN.findall(page)}
    action = unescape(ACTION.search(page).group(1))  # type: ignore[union-attr]
    fields.update(email=args.email.format(n=user % args.users), password=args.password)
    status, location, body = await browser.post(action if action.startswith("http") else args.base + action, fields)
    if status != 303 or not location.startswith(args.redirect_uri):
        raise RuntimeError(f"login POST: {status} {location} {body[:200]}")
    code = parse_qs(urlsplit(location).query)["code"][0]
    async with http.post(
        f"{issuer}/token",
        data={"grant_type": "authorization_code", "code": code, "redirect_uri": args.redirect_uri,
              "code_verifier": verifier},
        headers={"Authorization": basic(args.client, args.secret)},
    ) as response:
        tokens = await response.json()
        if response.status != 200:
            raise RuntimeError(f"token: {response.status} {tokens}")
    return tokens


def session() -> aiohttp.ClientSession:
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=0, force_close=False),
        cookie_jar=aiohttp.DummyCookieJar(),
        timeout=aiohttp.ClientTimeout(total=30),
    )


async def run_login(args: argparse.Namespace) -> dict[str, Any]:
    latencies: list[float] = []
    errors: list[str] = []
    async with session() as http:
        deadline = time.perf_counter() + args.duration

        async def worker(user: int) -> None:
            while time.perf_counter() < deadline:
                started = time.perf_counter()
                try:
                    await login_once(http, args, user)
                except Exception as exc:  # counted and reported, never hidden
                    errors.append(str(exc)[:200])
                    continue
                latencies.append(time.perf_counter() - started)

        started = time.perf_counter()
        await asyncio.gather(*(worker(n) for n in range(args.concurrency)))
        elapsed = time.perf_counter() - started
    return {
        "flows": len(latencies), "seconds": elapsed, "rate": len(latencies) / elapsed,
        "p50_ms": percentile(latencies, 50) * 1000, "p99_ms": percentile(latencies, 99) * 1000,
        "errors": len(errors), "first_errors": errors[:3],
    }


async def run_families(args: argparse.Namespace) -> dict[str, Any]:
    """`count` logins, each the start of a refresh-token family; tokens saved to `out`."""
    semaphore = asyncio.Semaphore(args.concurrency)
    async with session() as http:

        async def one(user: int) -> str:
            async with semaphore:
                return (await login_once(http, args, user))["refresh_token"]

        tokens = await asyncio.gather(*(one(n) for n in range(args.count)))
    Path(args.out).write_text(json.dumps([{"token": t, "rotations": 0} for t in tokens]))
    return {"families": len(tokens)}


async def run_refresh(args: argparse.Namespace) -> dict[str, Any]:
    """Every family rotated by its own client loop, all at once; state saved back."""
    state = json.loads(Path(args.tokens).read_text())
    latencies: list[float] = []
    errors: list[str] = []
    auth = {"Authorization": basic(args.client, args.secret)}
    url = f"{args.base}/realms/{args.realm}/token"
    async with session() as http:
        deadline = time.perf_counter() + args.duration

        async def worker(family: dict[str, Any]) -> None:
            while time.perf_counter() < deadline:
                started = time.perf_counter()
                async with http.post(url, data={"grant_type": "refresh_token", "refresh_token": family["token"]},
                                     headers=auth) as response:
                    body = await response.json()
                if response.status != 200:
                    errors.append(f"{response.status} {body}")
                    return  # this family is broken: stop rotating it (reported)
                family["token"] = body["refresh_token"]
                family["rotations"] += 1
                latencies.append(time.perf_counter() - started)

        started = time.perf_counter()
        await asyncio.gather(*(worker(f) for f in state))
        elapsed = time.perf_counter() - started
    Path(args.tokens).write_text(json.dumps(state))
    return {
        "rotations": len(latencies), "seconds": elapsed, "rate": len(latencies) / elapsed,
        "p50_ms": percentile(latencies, 50) * 1000, "p99_ms": percentile(latencies, 99) * 1000,
        "errors": len(errors), "first_errors": errors[:3],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("mode", choices=["login", "families", "refresh"])
    parser.add_argument("--base", required=True)
    parser.add_argument("--realm", default="bench")
    parser.add_argument("--client", default="webapp")
    parser.add_argument("--secret", required=True)
    parser.add_argument("--redirect-uri", default="http://127.0.0.1:9/callback")
    parser.add_argument("--scope", default="openid offline_access")
    parser.add_argument("--email", default="user{n}@bench.example", help="{n}: the user number")
    parser.add_argument("--users", type=int, default=64, help="accounts user0..user<N-1> exist")
    parser.add_argument("--password", default="correct horse battery staple")
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--count", type=int, default=64)
    parser.add_argument("--out")
    parser.add_argument("--tokens")
    args = parser.parse_args(argv)
    runner = {"login": run_login, "families": run_families, "refresh": run_refresh}[args.mode]
    try:
        import uvloop
    except ImportError:
        result = asyncio.run(runner(args))
    else:
        result = uvloop.run(runner(args))
    sys.stdout.write(json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
