"""A typed facade over pluggy's PluginManager: one method per hook, registries that
plugins `add` to, entry-point loading, and `check_pending()` so a misspelt hook fails
loudly. Nothing here is a module-level global: the app owns its `Plugins`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Protocol

import pluggy

from engine import hookspecs
from engine.config.models import ProviderSettings
from engine.events import Event
from engine.mail import senders as builtin_mail_senders

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ProviderType:
    name: str
    settings_model: type[ProviderSettings]
    factory: Any  # ProviderClass(settings, context)
    plugin: str


class ProviderRegistry:
    """Provider types by `type` name, as plugins `add` them."""

    def __init__(self) -> None:
        self._types: dict[str, ProviderType] = {}
        self._current_plugin = "?"

    def add(self, type_name: str, settings_model: type[ProviderSettings], factory: Any) -> None:
        if type_name in self._types:
            raise ValueError(
                f"provider type {type_name!r} is registered twice"
                f" ({self._types[type_name].plugin} and {self._current_plugin})"
            )
        if not issubclass(settings_model, ProviderSettings):
            raise TypeError(f"{settings_model!r} must subclass engine.ProviderSettings")
        self._types[type_name] = ProviderType(type_name, settings_model, factory, self._current_plugin)

    def get(self, type_name: str) -> ProviderType:
        return self._types[type_name]

    def names(self) -> list[str]:
        return sorted(self._types)

    def settings_models(self) -> list[type[ProviderSettings]]:
        return [self._types[name].settings_model for name in self.names()]


class PasswordHasher(Protocol):
    scheme: str

    def identifies(self, stored_hash: str) -> bool: ...

    def verify(self, stored_hash: str, password: str) -> bool: ...


class HasherRegistry:
    """Password hashers; the first added with a `hash` method is the default."""

    def __init__(self) -> None:
        self._hashers: list[PasswordHasher] = []

    def add(self, hasher: PasswordHasher) -> None:
        self._hashers.append(hasher)

    def for_hash(self, stored_hash: str) -> PasswordHasher | None:
        return next((h for h in self._hashers if h.identifies(stored_hash)), None)

    def all(self) -> list[PasswordHasher]:
        return list(self._hashers)


class Mailer(Protocol):
    async def send(self, message: Any) -> None: ...


class MailerRegistry:
    """Mail sender types by name (`mail: {type: ...}` in idp.yaml), as plugins `add` them."""

    def __init__(self) -> None:
        self._factories: dict[str, Any] = {}

    def add(self, type_name: str, factory: Any) -> None:
        if type_name in self._factories:
            raise ValueError(f"mail sender type {type_name!r} is registered twice")
        self._factories[type_name] = factory

    def get(self, type_name: str) -> Any:
        try:
            return self._factories[type_name]
        except KeyError:
            raise ValueError(
                f"unknown mail sender type {type_name!r}; installed: {', '.join(self.names())}"
            ) from None

    def names(self) -> list[str]:
        return sorted(self._factories)


class Plugins:
    """The app's plugin manager. `load_entrypoints=False` plus explicit `plugins` is how
    tests build an app without whatever happens to be installed."""

    def __init__(self, plugins: Iterable[Any] = (), *, load_entrypoints: bool = True) -> None:
        self._pm = pluggy.PluginManager(hookspecs.PROJECT)
        self._pm.add_hookspecs(hookspecs)
        # Built into the engine, on the same hook as any plugin (the embedded default needs a sender).
        self._pm.register(builtin_mail_senders, name="engine.mail")
        for plugin in plugins:
            self._pm.register(plugin)
        if load_entrypoints:
            self._pm.load_setuptools_entrypoints(hookspecs.PROJECT)
        self._pm.check_pending()
        self.providers = ProviderRegistry()
        for impl in self._pm.hook.tessera_register_providers.get_hookimpls():
            self.providers._current_plugin = impl.plugin_name
            impl.function(registry=self.providers)
        self.hashers = HasherRegistry()
        self._pm.hook.tessera_register_hashers(registry=self.hashers)
        self.mailers = MailerRegistry()
        self._pm.hook.tessera_register_mailers(registry=self.mailers)

    def register(self, plugin: Any, name: str | None = None) -> None:
        """Add a plugin object after start-up (the engine's built-in event sinks, such as
        the metrics sink); `unregister` removes it again."""
        self._pm.register(plugin, name=name)

    def unregister(self, plugin: Any) -> None:
        self._pm.unregister(plugin)

    def names(self) -> list[tuple[str, str | None]]:
        """(plugin name, distribution version or None) of every registered plugin."""
        versions = {id(module): dist.version for module, dist in self._pm.list_plugin_distinfo()}
        return [(name, versions.get(id(plugin))) for name, plugin in self._pm.list_name_plugin()]

    def emit(self, event: Event) -> None:
        """Hand an audit event to every sink; a failing sink is logged, never fatal."""
        for impl in self._pm.hook.tessera_event.get_hookimpls():
            try:
                impl.function(event=event)
            except Exception:  # a broken sink must not break a login
                log.exception("event sink %s failed on %s", impl.plugin_name, event.type)
