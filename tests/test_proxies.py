"""server.trusted_proxies: whose X-Forwarded-For is believed, for the
registration and login limits (and the logs, tests/test_logs.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from aiohttp.test_utils import make_mocked_request
from helpers import PASSWORD, expect_error, json_of, unique_email

from pulsestack.api.clients import client_address
from pulsestack.app import create_app
from pulsestack.appkeys import CONFIG, REGISTRATION_LIMITER
from pulsestack.config import load_config
from pulsestack.metrics import REGISTRY
from pulsestack.services.accounts import RegistrationLimiter

EMPTY = Path(__file__).with_name("empty.toml")


class Transport:
    """Just enough of a transport for make_mocked_request: its peer address."""

    def __init__(self, peer: str):
        self.peer = peer

    def get_extra_info(self, name: str, default=None):
        return (self.peer, 40_000) if name == "peername" else default


def address(peer: str, trusted: str, *forwarded: str) -> str:
    config = load_config(EMPTY, env={"PULSESTACK_SERVER_TRUSTED_PROXIES": trusted})
    app = create_app(config)
    headers = [("X-Forwarded-For", value) for value in forwarded]
    request = make_mocked_request("GET", "/", headers=headers, app=app, transport=Transport(peer))
    assert request.app[CONFIG] is config
    return client_address(request)


@pytest.mark.parametrize("peer, trusted, forwarded, client", [
    # nothing trusted: the header is anyone's to send, so it is ignored
    ("198.51.100.7", "", ["203.0.113.9"], "198.51.100.7"),
    # a peer outside the list: ignored too
    ("198.51.100.7", "10.0.0.0/8", ["203.0.113.9"], "198.51.100.7"),
    # a trusted proxy: the right-most address it did not itself vouch for
    ("10.1.2.3", "10.0.0.0/8", ["203.0.113.9"], "203.0.113.9"),
    ("10.1.2.3", "10.0.0.0/8", ["1.1.1.1, 203.0.113.9"], "203.0.113.9"),  # 1.1.1.1: the client's own claim
    ("10.1.2.3", "10.0.0.0/8", ["203.0.113.9, 10.9.9.9"], "203.0.113.9"),  # two proxies deep
    ("10.1.2.3", "10.0.0.0/8", ["1.1.1.1", "203.0.113.9, 10.9.9.9"], "203.0.113.9"),  # the header twice
    ("10.1.2.3", "10.0.0.0/8", ["10.8.8.8, 10.9.9.9"], "10.8.8.8"),  # all trusted: the furthest
    ("10.1.2.3", "10.0.0.0/8", ["bogus, 10.9.9.9"], "10.9.9.9"),  # not an address: the hop that wrote it
    ("10.1.2.3", "10.0.0.0/8", [], "10.1.2.3"),  # no header
    ("10.1.2.3", "10.0.0.0/8", ["203.0.113.9:5555"], "203.0.113.9"),
    ("::1", "::1", ["[2001:db8::7]:443"], "2001:db8::7"),
    ("::ffff:127.0.0.1", "127.0.0.1", ["203.0.113.9"], "203.0.113.9"),  # IPv4 seen through a dual-stack socket
])
def test_the_client_address(peer, trusted, forwarded, client):
    assert address(peer, trusted, *forwarded) == client


async def register_from(client, forwarded: str):
    return await client.post("/api/auth/register", json={"email": unique_email(), "password": PASSWORD},
                             headers={"X-Forwarded-For": forwarded})


async def test_behind_a_trusted_proxy_each_forwarded_address_has_its_own_registration_budget(aiohttp_client, config, db):
    app = create_app(config.replace(server={"trusted_proxies": ("127.0.0.1/32",)}), db=db)
    app[REGISTRATION_LIMITER] = RegistrationLimiter(per_client=2)
    client = await aiohttp_client(app)
    refused_before = REGISTRY.get_sample_value("pulsestack_rate_limited_total", {"limit": "registration"})
    for _ in range(2):
        await json_of(await register_from(client, "203.0.113.1"), 201)
    await expect_error(await register_from(client, "203.0.113.1"), 429, "rate_limited")
    # another client behind the same proxy is not held back by the first
    await json_of(await register_from(client, "203.0.113.2"), 201)
    # a forged left part changes nothing: the proxy appended the real address
    await expect_error(await register_from(client, "198.51.100.1, 203.0.113.1"), 429, "rate_limited")
    assert REGISTRY.get_sample_value("pulsestack_rate_limited_total", {"limit": "registration"}) == refused_before + 2


async def test_from_an_untrusted_peer_a_forwarded_address_is_ignored(aiohttp_client, config, db):
    app = create_app(config, db=db)  # trusted_proxies empty: the test client (127.0.0.1) is the client
    app[REGISTRATION_LIMITER] = RegistrationLimiter(per_client=2)
    client = await aiohttp_client(app)
    for forwarded in ("203.0.113.1", "203.0.113.2"):
        await json_of(await register_from(client, forwarded), 201)
    await expect_error(await register_from(client, "203.0.113.3"), 429, "rate_limited")
