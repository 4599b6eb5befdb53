"""Tessera's engine. This module is the public API for plugin authors: import from here,
never from engine internals, and never import pluggy yourself."""

from engine.config.durations import Duration
from engine.config.env import ENV, SECRET
from engine.config.models import ProviderSettings
from engine.events import Event
from engine.hookspecs import PasswordCapability, hookimpl
from engine.http import check_endpoint, fetch_json, secure_url_problem
from engine.providers import (
    AccessDenied,
    CredentialsProvider,
    ExternalIdentity,
    LoginFailed,
    ProviderAccounts,
    ProviderContext,
    ProviderError,
    ProviderPasswords,
    ProviderServices,
    RedirectProvider,
    RedirectProviderSettings,
    UpstreamError,
)

__all__ = [
    "AccessDenied",
    "CredentialsProvider",
    "Duration",
    "ENV",
    "Event",
    "ExternalIdentity",
    "LoginFailed",
    "PasswordCapability",
    "ProviderAccounts",
    "ProviderContext",
    "ProviderError",
    "ProviderPasswords",
    "ProviderServices",
    "ProviderSettings",
    "RedirectProvider",
    "RedirectProviderSettings",
    "SECRET",
    "UpstreamError",
    "check_endpoint",
    "fetch_json",
    "hookimpl",
    "secure_url_problem",
]
