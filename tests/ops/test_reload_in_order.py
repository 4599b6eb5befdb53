"""Reloads apply in the order they were asked for (SIGHUP, `idp reload`): of two quick
reloads around an edit, the one asked last reads the file last, so the older file is
never the one left serving, however long the first one takes to load."""

from __future__ import annotations

import asyncio
import time

import engine.reload
from engine.config import load_config
from engine.plugins import Plugins
from engine.reload import reload_config
from engine.web.app import create_app
from engine.web.appkeys import SERVICES

REALM = """\
name: acme
display_name: {name}
providers: [{{id: password, type: password}}]
clients:
  - {{client_id: app, type: public, redirect_uris: ["https://app/cb"], scopes: [openid]}}
"""


async def test_a_slow_first_reload_does_not_overwrite_a_later_one(tmp_path, aiohttp_client, monkeypatch):
    (tmp_path / "realms").mkdir()
    realm_file = tmp_path / "realms" / "acme.yaml"
    realm_file.write_text(REALM.format(name="Started"))
    (tmp_path / "idp.yaml").write_text("realms: realms/\nroot_realm: acme\n")
    plugins = Plugins()
    client = await aiohttp_client(create_app(load_config(tmp_path / "idp.yaml", plugins.providers.settings_models()),
                                             plugins=plugins))
    services = client.app[SERVICES]
    loads = []

    def slow_first_load(*args, **kwargs):
        config = load_config(*args, **kwargs)
        loads.append(config.realms["acme"].display_name)
        if len(loads) == 1:
            time.sleep(0.5)  # the first reload is still validating when the second is asked
        return config

    monkeypatch.setattr(engine.reload, "load_config", slow_first_load)
    realm_file.write_text(REALM.format(name="First edit"))
    first = asyncio.create_task(reload_config(services))
    await asyncio.sleep(0.2)
    realm_file.write_text(REALM.format(name="Second edit"))
    second = asyncio.create_task(reload_config(services))
    assert await asyncio.gather(first, second) == [True, True]
    assert loads == ["First edit", "Second edit"]
    assert services.runtime.realms["acme"].config.display_name == "Second edit"
