"""GitHub (OAuth 2, /user and /user/emails) redirect provider (plugin `github`)."""

from __future__ import annotations

from typing import Literal

from pydantic import SecretStr

from engine import ProviderSettings, hookimpl
from plugins.github.provider import GitHubProvider


class GitHubSettings(ProviderSettings):
    type: Literal["github"]
    client_id: str
    client_secret: SecretStr
    base_url: str = "https://github.com"  # GitHub Enterprise Server: https://ghe.example.com
    api_url: str = "https://api.github.com"  # GHES: https://ghe.example.com/api/v3
    scopes: list[str] = ["read:user", "user:email"]


@hookimpl
def tessera_register_providers(registry):
    registry.add("github", GitHubSettings, GitHubProvider)
