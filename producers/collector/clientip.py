"""The client's IP address: the TCP peer, or from X-Forwarded-For behind trusted proxies."""

from __future__ import annotations

import ipaddress
from functools import lru_cache

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def parse_networks(text: str) -> tuple[Network, ...]:
    """'10.0.0.0/8, 127.0.0.1' -> networks; raises ValueError on a bad entry."""
    return tuple(ipaddress.ip_network(part.strip(), strict=False)
                 for part in text.split(",") if part.strip())


def _address(text: str) -> Address | None:
    text = text.strip()
    if text.startswith("[") and "]" in text:  # [v6]:port
        text = text[1:text.index("]")]
    elif text.count(":") == 1:  # v4:port
        text = text.split(":", 1)[0]
    try:
        addr = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped:
        return addr.ipv4_mapped
    return addr


class ClientIp:
    """Right-most untrusted address of X-Forwarded-For, when the peer is a trusted proxy.

    `trust_all` is the legacy mode (every hop trusted: the left-most valid address)."""

    def __init__(self, trusted: tuple[Network, ...], *, trust_all: bool = False) -> None:
        self.trusted = trusted
        self.trust_all = trust_all and not trusted
        self.is_trusted = lru_cache(maxsize=4096)(self._is_trusted)
        self._resolved: dict[tuple[str, str], str] = {}

    def _is_trusted(self, text: str) -> bool:
        if self.trust_all:
            return True
        addr = _address(text)
        return addr is not None and any(addr in net for net in self.trusted)

    def __call__(self, peer: str, forwarded_for: str | None) -> str:
        if not forwarded_for or not (self.trusted or self.trust_all) \
                or not self.is_trusted(peer):
            return peer
        key = (peer, forwarded_for)
        client = self._resolved.get(key)
        if client is None:
            if len(self._resolved) >= 20_000:
                self._resolved.clear()
            client = self._resolved[key] = self._resolve(peer, forwarded_for)
        return client

    def _resolve(self, peer: str, forwarded_for: str) -> str:
        client = peer
        for hop in reversed(forwarded_for.split(",")):
            addr = _address(hop)
            if addr is None:
                break  # garbage left of here came from the client itself
            client = str(addr)
            if not self.is_trusted(client):
                break
        return client
