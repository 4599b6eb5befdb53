"""JSON Schema of the configuration, plugin settings included (`idp schema`)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from engine.config.models import ServerConfig, build_realm_model


def config_schema(provider_models: list[type[BaseModel]], kind: str = "all") -> dict[str, Any]:
    """`kind`: "server" (idp.yaml), "realm" (realms/*.yaml) or "all" (both, under $defs)."""
    server = ServerConfig.model_json_schema()
    realm = build_realm_model(provider_models).model_json_schema()
    server["title"], realm["title"] = "Tessera idp.yaml", "Tessera realm file"
    if kind == "server":
        return {"$schema": "https://json-schema.org/draft/2020-12/schema", **server}
    if kind == "realm":
        return {"$schema": "https://json-schema.org/draft/2020-12/schema", **realm}
    # Both under one root: their `$defs` move to the root, where their `#/$defs/...`
    # references point (a `#` reference is resolved against the whole document).
    definitions: dict[str, Any] = {}
    for part in (server, realm):
        for name, definition in part.pop("$defs", {}).items():
            if definitions.setdefault(name, definition) != definition:
                raise ValueError(f"two different configuration models are both named {name}")
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "Tessera configuration",
        "description": "idp.yaml is `server`; each realms/*.yaml file is `realm`.",
        "properties": {"server": server, "realm": realm},
        "$defs": definitions,
    }
