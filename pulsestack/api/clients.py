"""Who the client is: its address, for the login and registration limits and the logs.

Directly connected, the client is the TCP peer. Behind reverse proxies
listed in `server.trusted_proxies`, a request whose peer is one of them
carries the client in `X-Forwarded-For`: each proxy appends the address it
was connected from, so the header is read from the right, skipping the
proxies we trust, and the first address that is not one of them is the
client. Everything left of it was written by that client and proves
nothing. A peer outside the list gets its header ignored: anyone can send
one.
"""

from __future__ import annotations

import ipaddress
from functools import lru_cache

from aiohttp import web

from ..appkeys import CONFIG

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@lru_cache(maxsize=16)
def _networks(cidrs: tuple[str, ...]) -> tuple[Network, ...]:
    return tuple(ipaddress.ip_network(cidr) for cidr in cidrs)  # config.parse_network checked them


def _address(text: str) -> Address | None:
    """An address as a proxy writes it (`203.0.113.9`, `2001:db8::1`, with
    `[...]` or a `:port` sometimes), IPv4-mapped IPv6 as IPv4; else None."""
    text = text.strip()
    if text.startswith("["):
        text = text[1:text.find("]")] if "]" in text else ""
    elif text.count(":") == 1:
        text = text.split(":", 1)[0]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _trusted(address: Address, networks: tuple[Network, ...]) -> bool:
    return any(address in network for network in networks)


CLIENT = web.RequestKey("client_address", str)


def client_address(request: web.Request) -> str:
    """The client's address as text ("unknown" when there is no peer address at all);
    worked out once per request (the limiter and the access line both ask)."""
    known = request.get(CLIENT)
    if known is None:
        known = request[CLIENT] = _client_address(request)
    return known


def _client_address(request: web.Request) -> str:
    peer = request.remote or "unknown"
    cidrs = request.app[CONFIG].server.trusted_proxies
    if not cidrs:
        return peer
    networks = _networks(cidrs)
    hop = _address(peer)
    if hop is None or not _trusted(hop, networks):
        return peer
    client = str(hop)
    forwarded = [part for header in request.headers.getall("X-Forwarded-For", ()) for part in header.split(",")]
    for text in reversed(forwarded):
        hop = _address(text)
        if hop is None:  # not an address: the trusted hop to its right is all we know
            break
        client = str(hop)
        if not _trusted(hop, networks):
            break
    return client
