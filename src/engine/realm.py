"""A realm at run time: its validated config plus what is derived from it once
(issuer, clients by id, provider instances). A `Realm` is made for every realm when a
config is loaded or reloaded, but what it derives is built on the realm's first use
(10,000 realms must start in seconds, and most of them are idle); handlers receive the
request's realm, resolved in one place."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any

from engine.config import Client, Config, RealmBase
from engine.plugins import Plugins
from engine.providers import ProviderContext
from engine.secrets_util import sha256_hex

if TYPE_CHECKING:
    from engine.services import Services


@dataclass(frozen=True, eq=False)  # identity hash: caches key on the object
class Realm:
    name: str
    config: RealmBase
    issuer: str
    plugins: Plugins | None = field(default=None, repr=False)
    services: Services | None = field(default=None, repr=False)
    # What endpoints derive from this realm's configuration once (e.g. the serialised
    # discovery document); it lives and dies with the realm, so a reload starts afresh.
    derived: dict[str, Any] = field(default_factory=dict, repr=False)

    @cached_property
    def clients(self) -> dict[str, Client]:
        return {c.client_id: c for c in self.config.clients}

    @cached_property
    def providers(self) -> dict[str, Any]:
        """Provider id -> provider instance, made on first use."""
        if self.plugins is None:
            return {}
        # The provider gets the narrow ProviderServices view of the engine, not the locator.
        context = ProviderContext(realm=self.name, issuer=self.issuer, base_url=self.issuer,
                                  display_name=self.config.display_name, engine=self.services)
        return {
            p.id: self.plugins.providers.get(p.type).factory(p, context)
            for p in getattr(self.config, "providers", [])
        }

    @cached_property
    def client_secret_hashes(self) -> dict[str, str]:
        """client_id -> SHA-256 hex of its secret (`secret_sha256`, or the hash of a
        `${ENV}` secret, computed once per loaded configuration)."""
        hashes = {}
        for client in self.config.clients:
            if client.secret_sha256 is not None:
                hashes[client.client_id] = client.secret_sha256
            elif client.secret is not None:
                hashes[client.client_id] = sha256_hex(client.secret.get_secret_value())
        return hashes

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


def build_runtime(config: Config, plugins: Plugins, services: Services | None = None) -> Runtime:
    realms = {
        name: Realm(name=name, config=realm_config, issuer=config.issuer(name), plugins=plugins, services=services)
        for name, realm_config in config.realms.items()
    }
    return Runtime(config=config, realms=realms)
