"""A user agent and an OAuth client for servers running in other processes.

One cookie jar for every instance: they share the host (127.0.0.1) and differ by port,
and cookies ignore the port, so the browser behaves as if a load balancer sent each of
its requests to whichever instance it is told to use."""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx

from tests.oauth.flow import form_fields
from tests.ops.servers import APP_REDIRECT, PASSWORD, WORKER_SECRET

SCOPE = "openid profile email offline_access"


def pkce_pair() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


def query_of(location: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


class Browser:
    def __init__(self, timeout: float = 10) -> None:
        self.http = httpx.Client(follow_redirects=False, timeout=timeout)
        self.secrets_seen: list[str] = []  # every password, code and token this browser handled

    def close(self) -> None:
        self.http.close()

    def authorize(self, base: str, *, client_id: str = "app", prompt: str | None = None,
                  state: str = "st") -> tuple[httpx.Response, str]:
        verifier, challenge = pkce_pair()
        params = {"response_type": "code", "client_id": client_id, "redirect_uri": APP_REDIRECT, "scope": SCOPE,
                  "state": state, "nonce": secrets.token_hex(8), "code_challenge": challenge,
                  "code_challenge_method": "S256"}
        if prompt:
            params["prompt"] = prompt
        self.secrets_seen.append(verifier)
        return self.http.get(f"{base}/authorize", params=params), verifier

    def submit_login(self, base: str, login_location: str, email: str, password: str) -> httpx.Response:
        """`login_location` and the form's action are paths from the root: they go to the
        instance `base` names."""
        origin = "{0.scheme}://{0.netloc}".format(urlsplit(base))
        path = urlsplit(login_location)
        page = self.http.get(f"{origin}{path.path}?{path.query}")
        assert page.status_code == 200, page.text
        action = re.search(r'<form method="post" action="([^"]+)"', page.text).group(1)
        self.secrets_seen.append(password)
        return self.http.post(f"{origin}{action}", data={**form_fields(page.text), "email": email,
                                                         "password": password})

    def login_for_code(self, authorize_on: str, login_on: str | None = None, *, email: str,
                       password: str = PASSWORD, client_id: str = "app") -> tuple[str, str]:
        """Authorize on one instance, sign in on another (or the same); (code, verifier)."""
        response, verifier = self.authorize(authorize_on, client_id=client_id)
        assert response.status_code == 303, response.text
        location = response.headers["location"]
        if "/login?" in location:
            response = self.submit_login(login_on or authorize_on, location, email, password)
            assert response.status_code == 303, response.text
            location = response.headers["location"]
        assert location.startswith(APP_REDIRECT), location
        code = query_of(location)["code"]
        self.secrets_seen.append(code)
        return code, verifier

    def code_by_session(self, base: str, client_id: str = "app") -> tuple[str, str]:
        """A code from the SSO session alone (prompt=none): no login page."""
        response, verifier = self.authorize(base, client_id=client_id, prompt="none")
        assert response.status_code == 303, response.text
        query = query_of(response.headers["location"])
        assert "code" in query, query
        self.secrets_seen.append(query["code"])
        return query["code"], verifier

    def remember(self, body: dict[str, Any]) -> dict[str, Any]:
        for name in ("access_token", "refresh_token", "id_token"):
            if name in body:
                self.secrets_seen.append(body[name])
        return body


def exchange(base: str, code: str, verifier: str, client_id: str = "app", timeout: float = 10) -> httpx.Response:
    return httpx.post(f"{base}/token", timeout=timeout, data={
        "grant_type": "authorization_code", "code": code, "redirect_uri": APP_REDIRECT,
        "client_id": client_id, "code_verifier": verifier})


def refresh(base: str, refresh_token: str, client_id: str = "app", timeout: float = 10) -> httpx.Response:
    return httpx.post(f"{base}/token", timeout=timeout, data={
        "grant_type": "refresh_token", "refresh_token": refresh_token, "client_id": client_id})


async def refresh_async(client: httpx.AsyncClient, base: str, refresh_token: str,
                        client_id: str = "app") -> httpx.Response:
    return await client.post(f"{base}/token", data={
        "grant_type": "refresh_token", "refresh_token": refresh_token, "client_id": client_id})


def client_credentials(base: str, timeout: float = 10) -> httpx.Response:
    return httpx.post(f"{base}/token", timeout=timeout, auth=("worker", WORKER_SECRET),
                      data={"grant_type": "client_credentials", "scope": "videos.read"})
