"""The callback edge's limits (invariant 1: slow or hostile clients never crowd out WeCom), and which
address a request comes from.

Deadlines, not idle timers: an idle timer that restarts with every byte lets one byte every 2 s hold a
connection for ever, so each phase of a request has a deadline fixed when the phase starts.

- A new connection must deliver its first request head within ``head_deadline_seconds`` of being
  accepted: connecting and saying nothing is no better than dripping, and WeCom writes at once.
- On a kept-alive connection the client may wait ``idle_seconds`` before its next request; that
  request's head must then be complete within ``head_deadline_seconds`` of its first byte.
- Once the head is complete, the whole body must arrive within ``body_deadline_seconds``.

Client address: the socket peer, unless the peer is one of ``trusted_proxies``; then it is the
rightmost ``X-Forwarded-For`` entry that is not itself a trusted proxy (the entries to its left were
written by whoever the proxy talked to, so anyone can forge them). ``X-Real-IP`` is not read: a proxy
that sets only it may pass a client's own ``X-Forwarded-For`` through, and reading both would let the
forgery win. Configure the proxy to append (nginx:
``proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for``).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
UNKNOWN_ADDRESS = "unknown"


@dataclass(frozen=True)
class EdgeLimits:
    """Limits of the callback port; every field can become a setting. 0 turns a per-address limit off."""

    head_deadline_seconds: float = 10.0  # WeCom's whole callback takes milliseconds; its timeout is 5 s
    body_deadline_seconds: float = 10.0  # callbacks are < 1 KB; 10 s is generous even on a bad link
    idle_seconds: float = 15.0  # keep-alive wait between requests on one connection
    max_connections: int = 1024  # open connections in all; more are closed at once
    max_connections_per_address: int = 64  # one address can never take more, so a flood leaves room
    # A token bucket holding a minute's worth, then 429. Not lower: WeCom calls from a handful of
    # addresses, one callback per event, and `python -m bench --only ack` posts 1,100 from one.
    requests_per_address_per_minute: int = 6000
    trusted_proxies: frozenset[str] = frozenset()  # addresses or CIDR networks of reverse proxies
    _proxy_networks: tuple[IpNetwork, ...] = field(init=False, repr=False, compare=False, default=())

    def __post_init__(self) -> None:
        for name in ("head_deadline_seconds", "body_deadline_seconds", "idle_seconds", "max_connections"):
            if not getattr(self, name) > 0:
                raise ValueError(f"edge limit {name} must be greater than 0")
        for name in ("max_connections_per_address", "requests_per_address_per_minute"):
            if getattr(self, name) < 0:
                raise ValueError(f"edge limit {name} must be 0 (off) or more")
        object.__setattr__(self, "trusted_proxies", frozenset(self.trusted_proxies))
        object.__setattr__(self, "_proxy_networks", _networks(self.trusted_proxies))

    @property
    def shortest_deadline(self) -> float:
        return min(self.head_deadline_seconds, self.body_deadline_seconds, self.idle_seconds)

    def trusts(self, address: str) -> bool:
        """Is ``address`` (as ``peer_address`` returns it) one of the trusted proxies?"""
        if not self._proxy_networks:
            return False
        ip = _ip(address)
        return ip is not None and any(ip in network for network in self._proxy_networks)

    def client_address(self, peer: str, headers: Iterable[tuple[bytes, bytes]]) -> str:
        """The address a request comes from: ``peer``, or what a trusted ``peer`` forwarded."""
        if not self.trusts(peer):
            return peer
        hops = [
            hop.strip()
            for name, value in headers
            if name.lower() == b"x-forwarded-for"
            for hop in value.decode("latin-1").split(",")
        ]
        for hop in reversed(hops):
            ip = _ip(hop)
            if ip is None:
                break  # garbage at or right of a real hop: nothing left of it can be trusted
            if not self.trusts(str(ip)):
                return str(ip)
        return peer  # no usable header: the proxy itself is the client (an allowlist then refuses it)


def _networks(entries: Iterable[str]) -> tuple[IpNetwork, ...]:
    networks = []
    for entry in sorted(entries):
        try:
            networks.append(ipaddress.ip_network(entry.strip(), strict=False))
        except ValueError:
            raise ValueError(f"edge limit trusted_proxies: {entry!r} is not an address or network") from None
    return tuple(networks)


def _ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        ip = ipaddress.ip_address(text.strip().removeprefix("[").removesuffix("]"))
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped  # a dual-stack socket reports IPv4 peers as ::ffff:a.b.c.d
    return ip


def peer_address(peername: Any) -> str:
    """The socket peer as a plain address string (IPv4-mapped IPv6 as IPv4), for limits and allowlists."""
    if not isinstance(peername, tuple) or not peername or not isinstance(peername[0], str):
        return UNKNOWN_ADDRESS  # e.g. a Unix socket; all such peers share one address's limits
    ip = _ip(peername[0])
    return str(ip) if ip is not None else peername[0]
