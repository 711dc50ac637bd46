"""Internal traffic: client IP ranges whose events are left out of the traffic windows.

The IP is only known in the worker (the collector envelope carries it; the enriched row
never does), so the check runs there. Ranges are global or per site:
`10.0.0.0/8, shop.example=192.0.2.0/24, shop.example=2001:db8::/32`.
"""

from __future__ import annotations

import ipaddress
from functools import lru_cache

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class InternalTraffic:
    def __init__(self, spec: str) -> None:
        self.everywhere: list[Network] = []
        self.per_site: dict[str, list[Network]] = {}
        for item in (s.strip() for s in spec.split(",")):
            if not item:
                continue
            site, _, cidr = item.rpartition("=")
            net = ipaddress.ip_network(cidr.strip(), strict=False)
            if site:
                self.per_site.setdefault(site.strip(), []).append(net)
            else:
                self.everywhere.append(net)
        self.enabled = bool(self.everywhere or self.per_site)
        self._match = lru_cache(maxsize=65_536)(self._lookup)

    def __call__(self, site_id: str, ip: str) -> bool:
        """True when `ip` is internal for `site_id`."""
        return self.enabled and bool(ip) and self._match(site_id, ip)

    def _lookup(self, site_id: str, ip: str) -> bool:
        try:
            addr = ipaddress.ip_address(ip)
        except ValueError:
            return False
        nets = self.everywhere + self.per_site.get(site_id, [])
        return any(addr.version == n.version and addr in n for n in nets)
