"""When parts of a visitor's state can no longer change any output, and trimming them.

A visitor state (streams/sessionize.py) holds four things with a time horizon:
- `seen`: event ids with their receive time; an id counts as a duplicate only within the
  dedup window of its first receipt;
- `sessions`: an event joins a session only if its time is within the timeout of it, and
  only events up to `lateness` behind their receive time are promised to join;
- `tp`: touchpoints, credited only within the attribution lookback of a conversion;
- and two without one: `user` (the link to a signed-in user, which routes later
  conversions to the user's history) and `orders` (order ids never attributed twice).

A partition's watermark W is the newest receive time its events brought. Every event still
to come is assumed received at W - margin or later (collectors' clocks agree within the
margin), and only events within lateness of their receipt are promised exact results. So:
- a `seen` entry received before W - margin - dedup can never match again;
- when every session ended before W - margin - lateness - timeout, none can be joined
  (an event at ts >= R - lateness would need ts <= last + timeout);
- when every touchpoint is older than W - margin - lateness - lookback, none is in any
  future conversion's lookback, and the next touch merge would drop them all.
Dropping them changes no output for such events; a state left with nothing but counters
is deleted (a returning visitor starts afresh, as it would have).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from streams.sessions import SessionRules

HOUR_MS = 3_600_000
TRIMMED = frozenset(("seen", "sessions", "tp"))
COUNTERS = frozenset(("first", "last", "n"))  # no output depends on them


@dataclass(frozen=True)
class Retention:
    dedup_ms: int
    timeout_ms: int
    lateness_ms: int
    lookback_ms: int  # the longest of all sites
    margin_ms: int = HOUR_MS

    def seen_floor(self, watermark: int) -> int:
        return watermark - self.margin_ms - self.dedup_ms

    def session_floor(self, watermark: int) -> int:
        return watermark - self.margin_ms - self.lateness_ms - self.timeout_ms

    def touch_floor(self, watermark: int) -> int:
        return watermark - self.margin_ms - self.lateness_ms - self.lookback_ms


def trim(state: dict[str, Any], watermark: int, rules: Retention) -> dict[str, Any] | None:
    """The state without what can no longer matter at `watermark`: the same object when
    nothing can go, None when nothing is left to keep."""
    seen: dict[str, int] = state.get("seen") or {}
    floor = rules.seen_floor(watermark)
    kept_seen = {k: t for k, t in seen.items() if t >= floor}
    sessions = state.get("sessions") or []
    drop_sessions = bool(sessions) and all(
        s["last"] < rules.session_floor(watermark) for s in sessions)
    tps = state.get("tp") or []
    drop_tp = bool(tps) and all(t[0] < rules.touch_floor(watermark) for t in tps)
    if len(kept_seen) == len(seen) and not drop_sessions and not drop_tp:
        return state
    out = {k: v for k, v in state.items() if k not in TRIMMED}
    if kept_seen:
        out["seen"] = kept_seen
    if sessions and not drop_sessions:
        out["sessions"] = sessions
    if tps and not drop_tp:
        out["tp"] = tps
    return out if out.keys() - COUNTERS else None


def retention(dedup_ms: int, session_rules: Iterable[SessionRules],
              lookbacks: Iterable[int]) -> Retention:
    """The longest horizons over the defaults and every site's overrides."""
    rules = list(session_rules)
    return Retention(dedup_ms=dedup_ms, timeout_ms=max(r.timeout_ms for r in rules),
                     lateness_ms=max(r.lateness_ms for r in rules), lookback_ms=max(lookbacks))
