"""GitHub as an OAuth 2 upstream (GitHub docs "Authorizing OAuth apps"): authorize, the
code exchange with `Accept: application/json` (GitHub answers form-encoded otherwise,
and reports errors with HTTP 200), `GET /user`, then `GET /user/emails` for the verified
primary email, since `/user` shows only a public email, often none (seed footer).

The identity is (base URL, numeric user id): the login name can be changed and reused.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from engine import ExternalIdentity, ProviderContext, UpstreamError, fetch_json

API_HEADERS = {"Accept": "application/vnd.github+json", "X-GitHub-Api-Version": "2022-11-28"}


class GitHubProvider:
    kind = "redirect"

    def __init__(self, settings: Any, context: ProviderContext):
        self.settings = settings
        self.context = context
        self.base_url = settings.base_url.rstrip("/")
        self.api_url = settings.api_url.rstrip("/")

    async def login_url(self, callback_url: str, state: str, nonce: str, code_challenge: str) -> str:
        query = {
            "client_id": self.settings.client_id,
            "redirect_uri": callback_url,
            "scope": " ".join(self.settings.scopes),
            "state": state,
        }
        if self.settings.pkce:
            query.update(code_challenge=code_challenge, code_challenge_method="S256")
        return f"{self.base_url}/login/oauth/authorize?{urlencode(query)}"

    async def handle_callback(
        self, callback_url: str, params: dict[str, str], nonce: str, code_verifier: str
    ) -> ExternalIdentity:
        code = params.get("code")
        if not code:
            raise UpstreamError("callback without a code")
        access_token = await self._exchange(code, callback_url, code_verifier)
        headers = {**API_HEADERS, "Authorization": f"Bearer {access_token}"}
        user = await fetch_json(self.context.http, "GET", f"{self.api_url}/user", headers=headers)
        if not isinstance(user, dict) or not isinstance(user.get("id"), int | str) or isinstance(user["id"], bool):
            raise UpstreamError("/user answered without a user id")
        email, verified = await self._primary_email(headers, user)
        claims = {
            "name": user.get("name") or None,
            "nickname": user.get("login"),
            "preferred_username": user.get("login"),
            "picture": user.get("avatar_url"),
            "profile": user.get("html_url"),
        }
        return ExternalIdentity(
            issuer=self.base_url,
            subject=str(user["id"]),
            email=email,
            email_verified=verified,
            claims={k: v for k, v in claims.items() if isinstance(v, str) and v},
        )

    async def _exchange(self, code: str, callback_url: str, code_verifier: str) -> str:
        form = {
            "client_id": self.settings.client_id,
            "client_secret": self.settings.client_secret.get_secret_value(),
            "code": code,
            "redirect_uri": callback_url,
        }
        if self.settings.pkce:
            form["code_verifier"] = code_verifier
        tokens = await fetch_json(self.context.http, "POST", f"{self.base_url}/login/oauth/access_token",
                                  data=form, headers={"Accept": "application/json"})
        if not isinstance(tokens, dict):
            raise UpstreamError("token response is not a JSON object")
        if "error" in tokens:
            raise UpstreamError(f"token exchange refused: {tokens.get('error')!r}")
        access_token = tokens.get("access_token")
        if not isinstance(access_token, str) or not access_token:
            raise UpstreamError("token response without an access_token")
        return access_token

    async def _primary_email(self, headers: dict[str, str], user: dict[str, Any]) -> tuple[str | None, bool]:
        """The primary email from /user/emails, verified only if GitHub says so; without the
        `user:email` scope (403/404) only the public email of /user is known, and it
        counts as unverified."""
        try:
            emails = await fetch_json(self.context.http, "GET", f"{self.api_url}/user/emails", headers=headers)
        except UpstreamError as exc:
            if exc.status not in (403, 404):
                raise
            emails = []
        if not isinstance(emails, list):
            raise UpstreamError("/user/emails is not a list")
        for entry in emails:
            if (isinstance(entry, dict) and entry.get("primary") is True
                    and isinstance(entry.get("email"), str) and entry["email"]):
                return entry["email"], entry.get("verified") is True
        public = user.get("email")
        return (public, False) if isinstance(public, str) and public else (None, False)
