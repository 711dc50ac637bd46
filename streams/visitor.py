"""Cookieless visitor ids: a hash of a daily-rotating secret salt, site, IP and user agent.

Salts are random, kept only for today and yesterday in $CLICKSTREAM_HOME/salts.json (mode
0600), and never logged: once a day's salt is gone, that day's ids cannot be linked to an
IP again. Workers on one host share the file; on several hosts, mount it on a shared volume.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import secrets
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson

KEEP_DAYS = 2


class SaltStore:
    """Daily salts, created on first use of a day."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._cache: dict[str, bytes] = {}

    def salt(self, day: str) -> bytes:
        got = self._cache.get(day)
        if got is None:
            got = self._load_or_create(day)
            self._cache = {d: s for d, s in self._cache.items() if d >= _days_before(day)}
            self._cache[day] = got
        return got

    def _load_or_create(self, day: str) -> bytes:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        with os.fdopen(fd, "r+b") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            raw = fh.read()
            salts: dict[str, str] = orjson.loads(raw) if raw.strip() else {}
            if day not in salts:
                salts[day] = secrets.token_hex(32)
            oldest = _days_before(max(salts))
            salts = {d: s for d, s in salts.items() if d >= oldest}
            fh.seek(0)
            fh.truncate()
            fh.write(orjson.dumps(salts))
            return bytes.fromhex(salts[day])


def _days_before(day: str) -> str:
    d = datetime.strptime(day, "%Y-%m-%d").replace(tzinfo=UTC) - timedelta(days=KEEP_DAYS - 1)
    return d.strftime("%Y-%m-%d")


def cookieless_id(salts: SaltStore, day: str, site_id: str, ip: str, user_agent: str) -> str:
    """16 hex chars; stable for one visitor (IP + UA) on one site for one UTC day."""
    h = hashlib.blake2b(f"{site_id}\x1f{ip}\x1f{user_agent}".encode(), digest_size=8,
                        key=salts.salt(day))
    return h.hexdigest()
