"""Create the benchmark's users (verified, with the realm's argon2id password hashing),
as `idp users add` would, N at once: `users.py IDP_YAML REALM PASSWORD EMAIL...`."""

from __future__ import annotations

import asyncio
import sys

from engine.accounts.users import create_user
from engine.config import load_config
from engine.plugins import Plugins
from engine.web.app import create_app
from engine.web.appkeys import SERVICES


async def main(config_path: str, realm_name: str, password: str, emails: list[str]) -> None:
    plugins = Plugins()
    app = create_app(load_config(config_path, plugins.providers.settings_models()), plugins=plugins)
    contexts = [context(app) for context in app.cleanup_ctx]
    for context in contexts:
        await context.__anext__()
    try:
        services = app[SERVICES]
        realm = services.runtime.realms[realm_name]
        for email in emails:
            await create_user(services, realm, email=email, password=password, email_verified=True)
    finally:
        for context in reversed(contexts):
            try:
                await context.__anext__()
            except StopAsyncIteration:
                pass


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]))
