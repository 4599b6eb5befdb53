"""A realm at run time: its validated config plus what is derived from it once
(issuer, clients by id, provider instances). Built for every realm when a config is
loaded or reloaded; handlers receive the request's realm, resolved in one place."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from engine.config import Client, Config, RealmBase
from engine.plugins import Plugins
from engine.providers import ProviderContext


@dataclass(frozen=True, eq=False)  # identity hash: caches key on the object
class Realm:
    name: str
    config: RealmBase
    issuer: str
    clients: dict[str, Client]
    providers: dict[str, Any]  # provider id -> provider instance

    @property
    def display_name(self) -> str:
        return self.config.display_name or self.name

    def client(self, client_id: str | None) -> Client | None:
        return self.clients.get(client_id) if client_id else None


@dataclass(frozen=True)
class Runtime:
    """One loaded configuration, swapped as a whole on reload."""

    config: Config
    realms: dict[str, Realm]

    @property
    def root_realm(self) -> str | None:
        return self.config.server.root_realm


def build_runtime(config: Config, plugins: Plugins, services: Any = None) -> Runtime:
    realms: dict[str, Realm] = {}
    for name, realm_config in config.realms.items():
        issuer = config.issuer(name)
        context = ProviderContext(realm=name, issuer=issuer, base_url=issuer, services=services)
        providers = {
            p.id: plugins.providers.get(p.type).factory(p, context)
            for p in getattr(realm_config, "providers", [])
        }
        realms[name] = Realm(
            name=name,
            config=realm_config,
            issuer=issuer,
            clients={c.client_id: c for c in realm_config.clients},
            providers=providers,
        )
    return Runtime(config=config, realms=realms)
