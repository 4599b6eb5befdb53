"""The examples realm (issue 21): `idp serve --config examples/idp.yaml` serves the realm
`examples` with every client the examples use, and its user signs in from the browser."""

from __future__ import annotations

import base64
import hashlib
import secrets
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx

from tests.examples.conftest import IDP_CONFIG, ExamplesIdp, sign_in


def test_the_shipped_configuration_passes_idp_check():
    """`idp check` on the shipped examples/idp.yaml, as the examples README runs it."""
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-m", "engine.cli", "check", "--config", str(IDP_CONFIG)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "issuer http://localhost:4000/realms/examples, 9 client(s)" in result.stdout


def test_discovery_names_the_examples_issuer_and_grants(examples_idp: ExamplesIdp):
    """OIDC Discovery 1.0 §4.3: `issuer` is the URL the document was fetched under."""
    doc = httpx.get(f"{examples_idp.issuer}/.well-known/openid-configuration").raise_for_status().json()
    assert doc["issuer"] == examples_idp.issuer
    assert "urn:ietf:params:oauth:grant-type:device_code" in doc["grant_types_supported"]
    assert "urn:ietf:params:oauth:grant-type:token-exchange" in doc["grant_types_supported"]


def test_the_examples_user_signs_in_in_the_browser(examples_idp: ExamplesIdp, page):
    """RFC 6749 §4.1 up to the redirect with a code, for the BFF's client on its rewritten port."""
    redirect = examples_idp.url(8081, "/callback")
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    state = secrets.token_urlsafe(16)
    query = urlencode({"response_type": "code", "client_id": "bff", "redirect_uri": redirect, "scope": "openid",
                       "state": state, "code_challenge": challenge, "code_challenge_method": "S256"})
    codes: list[str] = []
    # Nothing listens on the redirect port: catch the redirect in the browser instead.
    page.route(f"{redirect}*", lambda route: (codes.append(route.request.url), route.fulfill(body="ok")))
    page.goto(f"{examples_idp.issuer}/authorize?{query}")
    sign_in(page, examples_idp)
    page.wait_for_url(f"{redirect}*")
    params = parse_qs(urlsplit(codes[0]).query)
    assert params["state"] == [state]
    assert params["iss"] == [examples_idp.issuer]
    assert params["code"][0]


def test_every_python_example_pins_what_the_suite_runs():
    """Issue 21, "Rules": each example pins its dependencies (exact versions), and the pins
    are the versions these tests run the examples with."""
    from importlib.metadata import version

    from tests.examples.conftest import EXAMPLES

    files = sorted(EXAMPLES.glob("*/requirements.txt"))
    assert {f.parent.name for f in files} >= {"bff", "resource-server-python", "service-to-service", "webhook",
                                              "worker", "cli-device"}
    for file in files:
        assert (file.parent / "README.md").exists(), file.parent
        for line in file.read_text().splitlines():
            if not line.strip() or line.startswith("#"):
                continue
            name, sep, pinned = line.partition("==")
            assert sep and pinned, f"{file}: {line!r} is not pinned to an exact version"
            assert version(name) == pinned, f"{file}: {name} {pinned} pinned, {version(name)} installed"
