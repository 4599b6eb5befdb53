"""What the Node examples' tests share (examples/spa, examples/resource-server-node,
examples/gateway-nginx): Node and the examples' installed dependencies (`make examples-deps`,
npm ci from the committed lock files), and the Node resource server started for a test."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.examples.conftest import EXAMPLES, ExamplesIdp, skip_or_fail

NODE_RS = EXAMPLES / "resource-server-node"
SPA = EXAMPLES / "spa"
GATEWAY = EXAMPLES / "gateway-nginx"


def node() -> str:
    """The `node` executable (Node 20.19+), or skip locally / fail in CI."""
    found = shutil.which("node")
    if found is None:
        skip_or_fail("Node.js is not installed; apt-get install nodejs npm")
    return found


def installed(example: Path) -> Path:
    """The example, once its node_modules exist (or skip locally / fail in CI)."""
    node()
    if not (example / "node_modules").is_dir():
        skip_or_fail(f"{example.relative_to(EXAMPLES.parent)}/node_modules is missing: run `make examples-deps`")
    return example


def start_node_api(idp: ExamplesIdp, start_example, *, name: str = "resource-server-node",
                   port: int | None = None, env: dict[str, str] | None = None) -> str:
    """examples/resource-server-node on the port standing in for 8083, trusting the SPA's
    origin; its base URL."""
    port = port or idp.port(8083)
    start_example(name, [node(), "server.mjs"], cwd=installed(NODE_RS), port=port, env={
        "ISSUER": idp.issuer, "PORT": str(port), "ALLOWED_ORIGINS": idp.url(5173), **(env or {})})
    return f"http://127.0.0.1:{port}"


@pytest.fixture(name="node_api")
def node_api_fixture(examples_idp: ExamplesIdp, start_example) -> str:
    return start_node_api(examples_idp, start_example)
