"""Configuration: YAML files → validated, frozen pydantic models (DESIGN.md "Configuration")."""

from engine.config.loader import Config, ConfigError, load_config
from engine.config.models import Client, ProviderSettings, RealmBase, ServerConfig

__all__ = ["Client", "Config", "ConfigError", "ProviderSettings", "RealmBase", "ServerConfig", "load_config"]
