"""CORS: echo an allowed Origin (never `*`), always `Vary: Origin`, answer preflights."""

from __future__ import annotations

from producers.collector.sites import SiteRegistry

VARY = {"Vary": "Origin"}
PREFLIGHT = {
    "Access-Control-Allow-Methods": "POST, GET, OPTIONS",
    "Access-Control-Allow-Headers": "Content-Type",
    "Access-Control-Max-Age": "86400",
}


class Cors:
    def __init__(self, registry: SiteRegistry) -> None:
        self.registry = registry
        self._allowed: dict[str, bool] = {}

    def allowed(self, origin: str) -> bool:
        got = self._allowed.get(origin)
        if got is None:
            got = self.registry.origin_allowed_anywhere(origin)
            if len(self._allowed) > 10_000:
                self._allowed.clear()
            self._allowed[origin] = got
        return got

    def headers(self, origin: str | None) -> dict[str, str]:
        """Headers for an actual (non-preflight) response."""
        if origin is not None and self.allowed(origin):
            return {"Access-Control-Allow-Origin": origin, **VARY}
        return VARY

    def preflight(self, origin: str | None) -> dict[str, str] | None:
        """Headers for a 204 preflight answer; None when the origin is not allowed."""
        if origin is None or not self.allowed(origin):
            return None
        return {"Access-Control-Allow-Origin": origin, **VARY, **PREFLIGHT}
