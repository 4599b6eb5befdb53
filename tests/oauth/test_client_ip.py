"""The caller's address behind reverse proxies (issue 16 item 4). `X-Forwarded-For` is a
list each proxy appends to (RFC 7239 §5.2 says the same of `Forwarded: for=`), so only its
right end, written by proxies the operator trusts, can be believed; the leftmost value is
whatever the client wrote (OWASP Authentication Cheat Sheet, "IP address based controls").
Per-IP rate limits, the IP lockout and audit rows key on the answer."""

from __future__ import annotations

import base64
import ipaddress

import pytest

from engine.clock import FrozenClock
from engine.config import ConfigError, load_config
from engine.oauth.ratelimit import caller_address
from engine.plugins import Plugins
from engine.web.app import create_app
from engine.web.appkeys import SERVICES
from tests.oauth.conftest import ACME, OTHER, WEB_SECRET, WORKER_SECRET, basic_auth, write_config

NETS = (ipaddress.ip_network("10.0.0.0/8"), ipaddress.ip_network("2001:db8:1::/48"))


def test_untrusted_peer_is_the_caller_whatever_it_writes():
    assert caller_address(NETS, ["1.2.3.4"], "203.0.113.9") == "203.0.113.9"
    assert caller_address((), ["1.2.3.4"], "203.0.113.9") == "203.0.113.9"


def test_the_first_untrusted_hop_from_the_right_is_the_caller():
    # the client wrote "1.2.3.4"; the outer proxy 10.0.0.5 appended the real peer
    assert caller_address(NETS, ["1.2.3.4, 198.51.100.7, 10.0.0.5"], "10.0.0.9") == "198.51.100.7"
    # several header lines are one list, in order
    assert caller_address(NETS, ["1.2.3.4, 198.51.100.7", "10.0.0.5"], "10.0.0.9") == "198.51.100.7"


def test_leftmost_value_cannot_choose_the_address():
    for spoof in ("127.0.0.1", "10.0.0.1", "x" * 3000, "1.1.1.1, 2.2.2.2"):
        assert caller_address(NETS, [f"{spoof}, 198.51.100.7"], "10.0.0.9") == "198.51.100.7"


def test_junk_stops_the_walk_at_the_last_trusted_hop():
    # a non-address where a trusted proxy should have written one: that proxy is the caller
    assert caller_address(NETS, ["198.51.100.7, " + "x" * 3000], "10.0.0.9") == "10.0.0.9"
    assert caller_address(NETS, ["198.51.100.7, unknown, 10.0.0.5"], "10.0.0.9") == "10.0.0.5"
    assert caller_address(NETS, [""], "10.0.0.9") == "10.0.0.9"
    # only trusted hops: the leftmost of them
    assert caller_address(NETS, ["10.1.1.1, 10.0.0.5"], "10.0.0.9") == "10.1.1.1"
    assert caller_address(NETS, [], "10.0.0.9") == "10.0.0.9"


def test_addresses_are_normalised():
    assert caller_address(NETS, ["2001:DB8:0:0::0:1"], "10.0.0.9") == "2001:db8::1"
    assert caller_address(NETS, ["::ffff:198.51.100.7"], "10.0.0.9") == "198.51.100.7"
    assert caller_address(NETS, ["[2001:db8::7]:443"], "10.0.0.9") == "2001:db8::7"
    assert caller_address(NETS, ["198.51.100.7:5678"], "10.0.0.9") == "198.51.100.7"
    assert caller_address(NETS, [], "::ffff:10.0.0.9") == "10.0.0.9"  # dual-stack peer, trusted as IPv4
    assert caller_address(NETS, ["198.51.100.7"], "2001:db8:1::2") == "198.51.100.7"
    assert caller_address((), [], None) == "unknown"


# --------------------------------------------------------------------------- configuration


def config_with(tmp_path, backend, server_lines: str):
    config = write_config(tmp_path, backend, {"acme": ACME, "other": OTHER}, "http://127.0.0.1:4000")
    (tmp_path / "idp.yaml").write_text((tmp_path / "idp.yaml").read_text() + server_lines)
    del config
    return load_config(tmp_path / "idp.yaml", Plugins().providers.settings_models(), environ={"WEB_SECRET": WEB_SECRET})


@pytest.fixture
def embedded(tmp_path):
    from tests.conftest import BackendUrls

    return BackendUrls("embedded", f"sqlite:///{tmp_path}/idp.sqlite3", "memory://", "")


def test_trust_forwarded_for_is_refused_naming_the_replacement(tmp_path, embedded):
    with pytest.raises(ConfigError) as caught:
        config_with(tmp_path, embedded, "trust_forwarded_for: true\n")
    [problem] = caught.value.problems
    assert "idp.yaml:5:" in problem and "trusted_proxies" in problem


@pytest.mark.parametrize("value", ["10.0.0.0/33", "not-a-network", "10.0.0.1/8", "''"])
def test_bad_trusted_proxies_are_config_errors(tmp_path, embedded, value):
    with pytest.raises(ConfigError) as caught:
        config_with(tmp_path, embedded, f"trusted_proxies: [{value}]\n")
    [problem] = caught.value.problems
    assert "idp.yaml:5:" in problem and "trusted_proxies" in problem


def test_trusted_proxies_parse_once(tmp_path, embedded):
    config = config_with(tmp_path, embedded, "trusted_proxies: [10.0.0.0/8, '2001:db8::1', 127.0.0.1]\n")
    assert config.server.trusted_proxies == ["10.0.0.0/8", "2001:db8::1/128", "127.0.0.1/32"]
    assert config.server.proxy_networks is config.server.proxy_networks
    assert "trust_forwarded_for" not in config.server.model_dump()


# --------------------------------------------------------------------------- through HTTP


async def app_client(tmp_path, backend, aiohttp_client, server_lines: str):
    config = config_with(tmp_path, backend, server_lines)
    clock = FrozenClock()
    app = create_app(config, clock=clock, ephemeral_prefix=backend.ephemeral_prefix,
                     environ={"IDP_KEY_ENCRYPTION_KEY": base64.urlsafe_b64encode(b"k" * 32).decode()})
    return await aiohttp_client(app), app[SERVICES], clock


async def counted_as(services, clock) -> list[str]:
    """The addresses the token endpoint's per-IP counter was keyed on in this window."""
    now = clock.timestamp()
    found = []
    for ip in ("127.0.0.1", "198.51.100.7", "6.6.6.6", "unknown"):
        if await services.ephemeral.incr(f"acme:rl:token:{ip}:{now - now % 60}", 61) > 1:
            found.append(ip)
    return found


async def token_request(client, forwarded_for: str):
    response = await client.post("/token", data={"grant_type": "client_credentials"},
                                  headers={**basic_auth("worker", WORKER_SECRET), "X-Forwarded-For": forwarded_for})
    assert response.status == 200


async def test_forwarded_for_from_an_untrusted_peer_is_ignored(tmp_path, backend, aiohttp_client):
    client, services, clock = await app_client(tmp_path, backend, aiohttp_client, "")
    await token_request(client, "6.6.6.6")
    assert await counted_as(services, clock) == ["127.0.0.1"]


async def test_behind_a_trusted_proxy_the_appended_hop_is_counted(tmp_path, backend, aiohttp_client):
    client, services, clock = await app_client(tmp_path, backend, aiohttp_client, "trusted_proxies: [127.0.0.0/8]\n")
    await token_request(client, "6.6.6.6, 198.51.100.7")  # the client wrote 6.6.6.6
    await token_request(client, "x" * 3000 + ", 198.51.100.7")
    assert await counted_as(services, clock) == ["198.51.100.7"]


# --------------------------------------------------------------------------- IPv6 budgets


def test_an_ipv6_caller_is_budgeted_as_its_64():
    """RFC 6177: a subscriber gets at least a /64, so every address in it is one caller for
    per-address budgets; IPv4 addresses and other subjects are kept as they are."""
    from engine.oauth.ratelimit import rate_subject

    assert rate_subject("2001:db8:1:2::1") == rate_subject("2001:db8:1:2:ffff:ffff:ffff:fffe") == "2001:db8:1:2::/64"
    assert rate_subject("2001:db8:1:3::1") != rate_subject("2001:db8:1:2::1")
    assert rate_subject("198.51.100.7") == "198.51.100.7"
    for subject in ("web", "alice@example.com", "a:b", "unknown"):
        assert rate_subject(subject) == subject


async def test_rotating_addresses_within_a_64_shares_one_budget(tmp_path, backend, aiohttp_client):
    """Through HTTP behind a trusted proxy: two addresses of one /64 hit the same per-IP
    counter of the token endpoint; an address of another /64 has its own."""
    client, services, clock = await app_client(tmp_path, backend, aiohttp_client, "trusted_proxies: [127.0.0.0/8]\n")
    await token_request(client, "2001:db8:1:2::1")
    await token_request(client, "2001:db8:1:2:abcd::9")
    await token_request(client, "2001:db8:1:3::1")
    now = clock.timestamp()
    window = now - now % 60

    def counted(subject: str) -> int:  # this instance's count (the store receives it in batches)
        entry = services.rate_counters.windows.get(f"acme:rl:token:{subject}:{window}")
        return 0 if entry is None else entry.shared + entry.inflight + entry.pending

    assert counted("2001:db8:1:2::/64") == 2
    assert counted("2001:db8:1:3::/64") == 1
    assert counted("2001:db8:1:2::1") == 0
    assert await services.ephemeral.incr(f"acme:rl:token:2001:db8:1:2::/64:{window}", 61) >= 2  # in the store too
