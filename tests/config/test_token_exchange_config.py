"""The token exchange policy (RFC 8693) in a client's config: checked by the loader and
reported as `file:line: message` (issue 19)."""

from __future__ import annotations

import pytest

from engine.config import load_config
from tests.config.test_loader import GOOD_REALM, models, problems, write  # noqa: F401 (fixture)

TE = "urn:ietf:params:oauth:grant-type:token-exchange"
SECRET = {"WORKER_SECRET": "s" * 32, "EX_SECRET": "e" * 32}


def realm_with(client: str) -> str:
    return GOOD_REALM + client


GOOD_EXCHANGER = f"""\
  - client_id: exchanger
    type: confidential
    secret: ${{EX_SECRET}}
    grant_types: [client_credentials, "{TE}"]
    scopes: [videos.read]
    token_exchange:
      from_clients: [frontend]
      audiences: [billing-api]
"""


def test_a_policy_with_the_grant_loads(tmp_path, models):  # noqa: F811
    config = load_config(write(tmp_path, {"acme.yaml": realm_with(GOOD_EXCHANGER)}), models, environ=SECRET)
    policy = config.realms["acme"].clients[2].token_exchange
    assert policy is not None
    assert policy.from_clients == ["frontend"] and policy.audiences == ["billing-api"]


@pytest.mark.parametrize(("client", "fragment"), [
    (f'  - {{client_id: ex, type: confidential, secret: "${{EX_SECRET}}", grant_types: ["{TE}"]}}\n',
     "token exchange needs a `token_exchange` policy"),
    (GOOD_EXCHANGER.replace("from_clients: [frontend]", "from_clients: [nobody]"),
     "no client 'nobody' in this realm"),
    (GOOD_EXCHANGER.replace("audiences: [billing-api]", "audiences: []"), "at least 1 item"),
    (GOOD_EXCHANGER.replace(f'grant_types: [client_credentials, "{TE}"]', "grant_types: [client_credentials]"),
     "is not in grant_types"),
    (f"""\
  - client_id: pub
    type: public
    redirect_uris: ["http://localhost:3000/cb"]
    grant_types: [authorization_code, "{TE}"]
    token_exchange: {{from_clients: [frontend], audiences: [billing-api]}}
""", "a public client may not use token exchange"),
])
def test_policy_problems_are_reported_with_file_and_line(tmp_path, models, client, fragment):  # noqa: F811
    """A grant without a policy, a policy naming an unknown client, no audiences, a policy
    without the grant, a public client: each a config problem, never a runtime surprise."""
    found = problems(write(tmp_path, {"acme.yaml": realm_with(client)}), models, environ=SECRET)
    assert any(fragment in p and "acme.yaml:" in p for p in found), found
