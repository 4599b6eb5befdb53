"""GitHub (OAuth 2, /user and /user/emails) redirect provider (plugin `github`).

```yaml
providers:
  - {id: github, type: github, client_id: "${GITHUB_CLIENT_ID}", client_secret: "${GITHUB_CLIENT_SECRET}"}
  - id: ghe                        # GitHub Enterprise Server
    type: github
    display_name: GitHub Enterprise
    base_url: https://ghe.example.com
    api_url: https://ghe.example.com/api/v3
    client_id: "${GHE_CLIENT_ID}"
    client_secret: "${GHE_CLIENT_SECRET}"
```
The OAuth app's callback URL is `{realm issuer}/login/<id>/callback` (or
`{realm issuer}/oauth/callback/<id>` with the seed's `/oauth/<id>` entry).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator

from engine import ENV, SECRET, RedirectProviderSettings, hookimpl, secure_url_problem
from plugins.github.provider import GitHubProvider


class GitHubSettings(RedirectProviderSettings):
    type: Literal["github"]
    display_name: str | None = "GitHub"
    client_id: Annotated[str, ENV]
    client_secret: Annotated[SecretStr, SECRET]
    base_url: Annotated[str, ENV] = "https://github.com"  # GitHub Enterprise Server: https://ghe.example.com
    api_url: Annotated[str, ENV] = "https://api.github.com"  # GHES: https://ghe.example.com/api/v3
    scopes: list[str] = ["read:user", "user:email"]
    pkce: bool = Field(True, description="send PKCE (S256); turn off for servers that reject it")

    @field_validator("base_url", "api_url")
    @classmethod
    def _secure(cls, value: str) -> str:
        # The client secret goes to base_url, users' tokens to api_url: HTTPS only
        # (plain HTTP on loopback, for a development server on this machine).
        if (problem := secure_url_problem(value)) is not None:
            raise ValueError(f"{value!r} {problem}")
        return value


@hookimpl
def tessera_register_providers(registry):
    registry.add("github", GitHubSettings, GitHubProvider)
