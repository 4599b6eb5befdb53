"""The `oauth2` redirect provider: RFC 6749 §4.1 upstream (code + PKCE S256, secret in the
form, §2.3.1), then a bearer GET of the userinfo URL."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode, urlsplit

from engine import ExternalIdentity, ProviderContext, UpstreamError, fetch_json


class OAuth2Provider:
    kind = "redirect"

    def __init__(self, settings: Any, context: ProviderContext):
        self.settings = settings
        self.context = context
        parts = urlsplit(settings.authorization_url)
        self.issuer = settings.issuer or f"{parts.scheme}://{parts.netloc}"

    async def login_url(self, callback_url: str, state: str, nonce: str, code_challenge: str) -> str:
        query = {"response_type": "code", "client_id": self.settings.client_id,
                 "redirect_uri": callback_url, "state": state}
        if self.settings.scopes:
            query["scope"] = " ".join(self.settings.scopes)
        if self.settings.pkce:
            query.update(code_challenge=code_challenge, code_challenge_method="S256")
        separator = "&" if "?" in self.settings.authorization_url else "?"
        return self.settings.authorization_url + separator + urlencode(query)

    async def handle_callback(
        self, callback_url: str, params: dict[str, str], nonce: str, code_verifier: str
    ) -> ExternalIdentity:
        code = params.get("code")
        if not code:
            raise UpstreamError("callback without a code")
        form = {"grant_type": "authorization_code", "code": code, "redirect_uri": callback_url,
                "client_id": self.settings.client_id,
                "client_secret": self.settings.client_secret.get_secret_value()}
        if self.settings.pkce:
            form["code_verifier"] = code_verifier
        tokens = await fetch_json(self.context.http, "POST", self.settings.token_url, data=form,
                                  headers={"Accept": "application/json"})
        access_token = tokens.get("access_token") if isinstance(tokens, dict) else None
        if not isinstance(access_token, str) or not access_token:
            raise UpstreamError("token response without an access_token")
        info = await fetch_json(self.context.http, "GET", self.settings.userinfo_url,
                                headers={"Authorization": f"Bearer {access_token}", "Accept": "application/json"})
        if not isinstance(info, dict):
            raise UpstreamError("userinfo is not a JSON object")
        subject = info.get(self.settings.subject_claim)
        if isinstance(subject, bool) or not isinstance(subject, str | int) or subject == "":
            raise UpstreamError(f"userinfo has no {self.settings.subject_claim!r}")
        email = info.get(self.settings.email_claim)
        email = email if isinstance(email, str) and email else None
        verified_claim = self.settings.email_verified_claim
        verified = email is not None and verified_claim is not None and info.get(verified_claim) is True
        claims = {local: info[member] for local, member in self.settings.claims.items()
                  if isinstance(info.get(member), str | int | float) and not isinstance(info.get(member), bool)}
        return ExternalIdentity(issuer=self.issuer, subject=str(subject), email=email,
                                email_verified=verified, claims=claims)
