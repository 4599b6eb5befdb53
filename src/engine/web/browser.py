"""The browser flows (authorization, sign-in, consent, logout, the account pages) as
aiohttp handlers: thin adapters over the protocol core (engine.oauth, engine.accounts),
which answers from the realm and the request's data alone (engine.exchange). Errors
propagate to the one middleware, which renders them as pages on these routes."""

from __future__ import annotations

from engine.oauth.logout import logout as logout_core
from engine.web.adapter import adapt

logout = adapt(logout_core)
