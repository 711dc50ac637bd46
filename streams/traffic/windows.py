"""Tumbling one-minute traffic windows: pure state and the rows they become.

One `WindowState` holds everything one Kafka partition has seen of one site in one minute
(event time): the totals, the same measures per value of each dimension, and the sessions
that started in the minute (to keep their bounce flag right as they grow). Everything is
plain data that round-trips through JSON, so the state can live in a Faust changelog.

Rules (see docs/traffic.md):
- an event belongs to the window holding its event time;
- it is *late beyond lateness* (dropped, only counted in a metric) when it arrives -- its
  collector receive time -- `lateness` or more after its window ended. The decision depends
  on the event alone, so replays decide the same and SQL can recompute it;
- a session *starts* in the window of its first event (session_seq 1); it is a *bounce*
  while not engaged (GA4: > 10 s, a conversion, or >= 2 pageviews), judged on the session's
  counted events; engagement never goes back, so a bounce is subtracted at most once.
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal
from typing import Any

WINDOW_MS = 60_000
ENGAGED_MS = 10_000
OTHER = "(other)"
#: Breakdown dimensions: name in traffic_1m.dimension -> events column.
DIMENSIONS: dict[str, str] = {
    "path": "path", "channel": "channel", "source": "source", "medium": "medium",
    "campaign": "utm_campaign", "country": "country", "device_type": "device_type",
}


def window_start(ts_ms: int) -> int:
    return ts_ms - ts_ms % WINDOW_MS


def is_late(ts_ms: int, received_ms: int, lateness_ms: int) -> bool:
    """True when the event arrived `lateness_ms` or more after its window ended."""
    return received_ms >= window_start(ts_ms) + WINDOW_MS + lateness_ms


class Measures:
    """Additive measures plus the exact set of visitor hashes."""

    __slots__ = ("bounces", "conversions", "events", "pageviews", "revenue", "sessions",
                 "visitors")

    def __init__(self) -> None:
        self.events = self.pageviews = self.conversions = self.sessions = self.bounces = 0
        self.revenue = Decimal(0)
        self.visitors: set[int] = set()

    def add_event(self, visitor: int, kind: str, revenue: str) -> None:
        self.events += 1
        if kind == "pageview":
            self.pageviews += 1
        elif kind == "conversion":
            self.conversions += 1
        if revenue and revenue != "0":
            self.revenue += Decimal(revenue)
        self.visitors.add(visitor)

    def merge(self, other: Measures) -> None:
        self.events += other.events
        self.pageviews += other.pageviews
        self.conversions += other.conversions
        self.sessions += other.sessions
        self.bounces += other.bounces
        self.revenue += other.revenue
        self.visitors |= other.visitors

    def dump(self) -> list[Any]:
        return [self.events, self.pageviews, self.conversions, str(self.revenue),
                self.sessions, self.bounces, list(self.visitors)]

    @classmethod
    def load(cls, data: list[Any]) -> Measures:
        m = cls()
        m.events, m.pageviews, m.conversions = data[0], data[1], data[2]
        m.revenue = Decimal(data[3])
        m.sessions, m.bounces = data[4], data[5]
        m.visitors = set(data[6])
        return m

    def columns(self) -> dict[str, Any]:
        return {"events": self.events, "pageviews": self.pageviews,
                "conversions": self.conversions, "revenue": str(self.revenue),
                "sessions": self.sessions, "bounces": self.bounces,
                "visitors": list(self.visitors)}


def _engaged(tracker: list[Any]) -> bool:
    first, last, pageviews, conversions = tracker[:4]
    return last - first > ENGAGED_MS or conversions > 0 or pageviews >= 2


class WindowState:
    """One site, one minute, one source partition."""

    __slots__ = ("dims", "emitted", "offset", "received", "sessions", "total", "touched")

    def __init__(self) -> None:
        self.offset = -1          # every event of the partition up to here is applied
        self.received = 0         # latest receive time applied (for the watermark)
        self.total = Measures()
        self.dims: dict[str, dict[str, Measures]] = {d: {} for d in DIMENSIONS}
        # dimension -> values written as their own (non-zero) row the last time
        self.emitted: dict[str, list[str]] = {d: [] for d in DIMENSIONS}
        # session id -> [first ts, last ts, pageviews, conversions, [dimension values]]
        self.sessions: dict[str, list[Any]] = {}
        self.touched: dict[str, set[str]] = {}  # not stored: changed since last emit

    # --- folding ------------------------------------------------------------------------

    def add(self, row: dict[str, Any], ts: int, visitor: int) -> None:
        """Count one event (not a bot, not internal, not late)."""
        kind, revenue = row["type"], row["revenue"]
        values = [row[col] for col in DIMENSIONS.values()]
        self.total.add_event(visitor, kind, revenue)
        started = row["session_seq"] == 1 and bool(row["session_id"])
        for (dim, by_value), value in zip(self.dims.items(), values, strict=True):
            m = by_value.get(value)
            if m is None:
                m = by_value[value] = Measures()
            m.add_event(visitor, kind, revenue)
            if started:
                m.sessions += 1
            self.touched.setdefault(dim, set()).add(value)
        if started:
            self.total.sessions += 1
            tracker = [ts, ts, 0, 0, values]
            self.sessions[row["session_id"]] = tracker
            self.total.bounces += 1
            for by_value, value in zip(self.dims.values(), values, strict=True):
                by_value[value].bounces += 1
            self.session_event(row["session_id"], ts, kind)

    def session_event(self, session_id: str, ts: int, kind: str) -> bool:
        """Fold one counted event of a session that started here; True if it became
        engaged (its bounce is taken back)."""
        tracker = self.sessions[session_id]
        was = _engaged(tracker)
        tracker[0], tracker[1] = min(tracker[0], ts), max(tracker[1], ts)
        if kind == "pageview":
            tracker[2] += 1
        elif kind == "conversion":
            tracker[3] += 1
        if was or not _engaged(tracker):
            return False
        self.total.bounces -= 1
        for (dim, by_value), value in zip(self.dims.items(), tracker[4], strict=True):
            by_value[value].bounces -= 1
            self.touched.setdefault(dim, set()).add(value)
        return True

    # --- rows -----------------------------------------------------------------------------

    def rows(self, top_n: int) -> Iterable[tuple[str, str, Measures | None]]:
        """(dimension, value, measures) for every row whose content changed since the last
        call: the total ("", ""), top-N values by events, "(other)" for the rest, and None
        (write zeros) for values that were written before but left the top N."""
        if not self.touched:
            return []
        out: list[tuple[str, str, Measures | None]] = [("", "", self.total)]
        for dim, changed in self.touched.items():
            by_value = self.dims[dim]
            ranked = sorted(by_value, key=lambda v: (-by_value[v].events, v))
            top, rest = ranked[:top_n], ranked[top_n:]
            before = set(self.emitted[dim])
            top_set = set(top)
            for value in top:
                if value in changed or value not in before:
                    out.append((dim, value, by_value[value]))
            for value in before - top_set:
                out.append((dim, value, None))
            if rest and (before != top_set or any(v not in top_set for v in changed)):
                other = Measures()
                for value in rest:
                    other.merge(by_value[value])
                out.append((dim, OTHER, other))
            self.emitted[dim] = top
        self.touched = {}
        return out

    # --- storage ------------------------------------------------------------------------

    def dump(self) -> dict[str, Any]:
        return {"o": self.offset, "r": self.received, "t": self.total.dump(),
                "d": {d: {v: m.dump() for v, m in by.items()} for d, by in self.dims.items()},
                "e": self.emitted, "s": self.sessions}

    @classmethod
    def load(cls, data: dict[str, Any]) -> WindowState:
        w = cls()
        w.offset, w.received = data["o"], data["r"]
        w.total = Measures.load(data["t"])
        w.dims = {d: {v: Measures.load(m) for v, m in by.items()} for d, by in data["d"].items()}
        w.emitted = data["e"]
        w.sessions = data["s"]
        return w
