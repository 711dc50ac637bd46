"""Tumbling one-minute traffic windows: pure state and the rows they become.

One `WindowState` holds what one Kafka partition has seen of one site in one minute (event
time): counters for the totals and for every value of each dimension, and, per value, the
visitor hashes already sent (so only new ones are sent). Counters round-trip through JSON
(they live in a Faust changelog); visitor hashes do not need to: ClickHouse keeps their
union (traffic_visitors_1m), so after a restart a hash is at worst sent once more.

Rules (see docs/traffic.md):
- an event belongs to the window holding its event time;
- it is *late beyond lateness* (dropped, only counted in a metric) when it arrives -- its
  collector receive time -- `lateness` or more after its window ended. The decision depends
  on the event alone, so replays decide the same and SQL can recompute it;
- a session *starts* in the window of its first event (session_seq 1); it is a *bounce*
  while not engaged (streams/traffic/bounces.py).
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence
from decimal import ROUND_DOWN, Decimal
from typing import Any

WINDOW_MS = 60_000
OTHER = "(other)"
#: Breakdown dimensions: name in traffic_1m.dimension -> events column.
DIMENSIONS: dict[str, str] = {
    "path": "path", "channel": "channel", "source": "source", "medium": "medium",
    "campaign": "utm_campaign", "country": "country", "device_type": "device_type",
}
#: Rows of a window in state order: the totals ("" with value "") then each dimension.
DIMS: tuple[str, ...] = ("", *DIMENSIONS)


def window_start(ts_ms: int) -> int:
    return ts_ms - ts_ms % WINDOW_MS


def is_late(ts_ms: int, received_ms: int, lateness_ms: int) -> bool:
    """True when the event arrived `lateness_ms` or more after its window ended."""
    return received_ms >= window_start(ts_ms) + WINDOW_MS + lateness_ms


class _Forgotten(set[int]):
    """The `seen` set of a window closed for counting: remembers nothing (a straggler's hash
    is simply sent again)."""

    def add(self, element: int) -> None:
        pass


FORGOTTEN = _Forgotten()
EVENTS, PAGEVIEWS, CONVERSIONS, REVENUE, SESSIONS, BOUNCES = range(6)
_INDEXES = range(len(DIMS))


class Counts:
    """Measures of one value (or the totals) of one window -- `c`: events, pageviews,
    conversions, revenue (in 1/10,000, see `revenue_units`), sessions, bounces; stored as
    is -- plus visitor hashes: `seen` (already sent; not stored) and `fresh` (to send with
    the next rows)."""

    __slots__ = ("c", "changed", "dim", "fresh", "seen", "value")

    def __init__(self, dim: int, value: str, c: list[Any] | None = None) -> None:
        self.dim, self.value = dim, value
        self.c: list[Any] = c if c is not None else [0, 0, 0, 0, 0, 0]
        self.seen: set[int] = set()
        self.fresh: list[int] = []
        self.changed = False

    def columns(self) -> dict[str, Any]:
        return columns(self.c)


def revenue_units(revenue: str) -> int:
    """An event's revenue in 1/10,000, cut toward zero as ClickHouse stores it in
    events.revenue (Decimal(18, 4)), so sums equal SQL sums over events."""
    return int((Decimal(revenue) * 10_000).to_integral_value(rounding=ROUND_DOWN))


def money(units: int) -> str:
    """1/10,000 units -> the decimal text of traffic_1m.revenue."""
    sign, units = ("-", -units) if units < 0 else ("", units)
    return f"{sign}{units // 10_000}.{units % 10_000:04d}"


def columns(c: Sequence[Any]) -> dict[str, Any]:
    """A traffic_1m row's measures from counters."""
    return {"events": c[EVENTS], "pageviews": c[PAGEVIEWS], "conversions": c[CONVERSIONS],
            "revenue": money(c[REVENUE]), "sessions": c[SESSIONS], "bounces": c[BOUNCES]}


def _load_counts(data: Sequence[Any]) -> list[Any]:
    revenue = data[REVENUE]
    return [data[0], data[1], data[2],
            revenue_units(revenue) if isinstance(revenue, str) else revenue,
            data[4], data[5]]


class WindowState:
    """One site, one minute, one source partition."""

    __slots__ = ("by_dim", "changed", "emitted", "fresh", "full", "offset", "received",
                 "stored", "zeroed")

    def __init__(self) -> None:
        self.offset = -1          # every event of the partition up to here is counted
        self.received = 0         # latest receive time counted (for the watermark)
        self.by_dim: list[dict[str, Counts]] = [{} for _ in DIMS]
        self.stored: list[dict[str, list[Any]]] = [{} for _ in DIMS]  # value -> Counts.c
        # per dimension: the values written as their own (non-zero) row the last time, and
        # those written as zeros then (they had left the top N)
        self.emitted: list[list[str]] = [[] for _ in DIMS]
        self.zeroed: list[list[str]] = [[] for _ in DIMS]
        self.changed: list[Counts] = []  # since the last rows
        self.fresh: list[Counts] = []    # with hashes to send
        self.full = False         # next rows: all of them (their delivery was not seen)

    def _counts(self, dim: int, value: str, c: list[Any] | None = None) -> Counts:
        m = self.by_dim[dim][value] = Counts(dim, value, c)
        self.stored[dim][value] = m.c
        return m

    # --- folding ------------------------------------------------------------------------

    def add(self, values: Sequence[str], kind: str, revenue: str, visitor: int,
            starts: bool, bounce: bool) -> None:
        """Count one event (not a bot, not internal, not late). `values`: "" then the value
        of each dimension; `starts`: it is a session's first event; `bounce`: that session
        is not engaged yet."""
        pageview = kind == "pageview"
        conversion = kind == "conversion"
        amount = revenue_units(revenue) if revenue and revenue != "0" else 0
        for i, by_value, value in zip(_INDEXES, self.by_dim, values, strict=True):
            m = by_value.get(value)
            if m is None:
                m = self._counts(i, value)
            c = m.c
            c[0] += 1
            if pageview:
                c[1] += 1
            elif conversion:
                c[2] += 1
            if amount:
                c[3] += amount
            if starts:
                c[4] += 1
                if bounce:
                    c[5] += 1
            seen = m.seen
            if visitor not in seen:
                seen.add(visitor)
                if not m.fresh:
                    self.fresh.append(m)
                m.fresh.append(visitor)
            if not m.changed:
                m.changed = True
                self.changed.append(m)

    def take_back_bounce(self, values: Sequence[str]) -> None:
        """A session that started here became engaged: it is no bounce (`values`: its first
        event's dimension values, without the leading "")."""
        for by_value, value in zip(self.by_dim, ("", *values), strict=True):
            m = by_value[value]
            m.c[BOUNCES] -= 1
            if not m.changed:
                m.changed = True
                self.changed.append(m)

    def resend(self) -> None:
        """Restored from a store whose last rows may not have reached Kafka: the next
        `rows` writes every row of the last ones again (own, zero and "(other)")."""
        self.full = True

    def forget_visitors(self) -> None:
        """Drop the sent-hash sets (the window is closed for counting: save the memory)."""
        for by_value in self.by_dim:
            for m in by_value.values():
                m.seen = FORGOTTEN

    # --- rows -----------------------------------------------------------------------------

    def rows(self, top_n: int) -> list[tuple[str, str, list[Any] | None]]:
        """(dimension, value, counters) for every traffic_1m row whose content changed
        since the last call: the totals ("", ""), top-N values by events (ties by value),
        "(other)" for the rest, and None (write zeros) for values written before that left
        the top N. After `resend`: all of them, and the zeros of the last call again."""
        changed: list[set[str]] = [set() for _ in DIMS]
        for m in self.changed:
            m.changed = False
            changed[m.dim].add(m.value)
        self.changed = []
        full, self.full = self.full, False
        total = self.by_dim[0][""].c if self.by_dim[0] else None
        out: list[tuple[str, str, list[Any] | None]] = []
        for i, by_value in enumerate(self.by_dim):
            if not by_value or not (full or changed[i]):
                continue
            dim, moved = DIMS[i], changed[i]
            if len(by_value) <= top_n:
                top = list(by_value)
            else:
                top = heapq.nsmallest(top_n, by_value,
                                      key=lambda v: (-by_value[v].c[EVENTS], v))
            before, top_set = set(self.emitted[i]), set(top)
            for value in top:
                if full or value in moved or value not in before:
                    out.append((dim, value, by_value[value].c))
            zeros = before - top_set
            if full:
                zeros |= set(self.zeroed[i]) - top_set
            for value in sorted(zeros):
                out.append((dim, value, None))
            if total is not None and len(by_value) > len(top) and (
                    full or before != top_set or any(v not in top_set for v in moved)):
                # every event has one value per dimension: "(other)" is the rest of the total
                other = list(total)
                for value in top:
                    for k, n in enumerate(by_value[value].c):
                        other[k] -= n
                out.append((dim, OTHER, other))
            self.emitted[i], self.zeroed[i] = top, sorted(zeros)
        return out

    def fresh_visitors(self) -> list[tuple[str, str, list[int]]]:
        """(dimension, value, hashes) not sent yet, for every value (top N or not)."""
        out = []
        for m in self.fresh:
            out.append((DIMS[m.dim], m.value, m.fresh))
            m.fresh = []
        self.fresh = []
        return out

    # --- storage ------------------------------------------------------------------------

    def dump(self) -> dict[str, Any]:
        """JSON-able (the counters as they are)."""
        return {"o": self.offset, "r": self.received, "c": self.stored,
                "e": self.emitted, "z": self.zeroed}

    @classmethod
    def load(cls, data: dict[str, Any]) -> WindowState:
        w = cls()
        w.offset, w.received = data["o"], data["r"]
        if "c" in data:
            for i, by in enumerate(data["c"]):
                for value, c in by.items():
                    w._counts(i, value, _load_counts(c))
            w.emitted, w.zeroed = data["e"], data["z"]
        else:  # written before 0007: totals and dimensions apart, visitor sets inside
            w._counts(0, "", _load_counts(data["t"]))
            for i, dim in enumerate(DIMENSIONS, 1):
                for value, m in data["d"].get(dim, {}).items():
                    w._counts(i, value, _load_counts(m))
            w.emitted = [[""]] + [list(data["e"].get(d, [])) for d in DIMENSIONS]
        return w
