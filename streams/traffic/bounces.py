"""Bounces: a session counts as a bounce in the window it started in until it is engaged.

GA4's rule, judged on the session's *counted* events (late-beyond-lateness ones are left
out): engaged after more than 10 s, a conversion, or 2 pageviews. Engagement never goes
back, so a bounce is taken back at most once, and an engaged session needs no tracking:
only sessions that are still bounces have a `Tracker`. Trackers are stored apart from their
window's counters, written only when they change (streams/traffic/trackerlog.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

ENGAGED_MS = 10_000


class Tracker:
    """A session that started in window (site, start) and is not engaged yet."""

    __slots__ = ("conversions", "first", "last", "offset", "pageviews", "site", "start",
                 "values")

    def __init__(self, site: str, start: int, ts: int, values: Sequence[str]) -> None:
        self.site, self.start = site, start
        self.first = self.last = ts
        self.pageviews = self.conversions = 0
        self.values = list(values)  # the first event's dimension values (DIMENSIONS order)
        self.offset = -1            # raw offset it was stored at; -1: not stored

    def see(self, ts: int, kind: str) -> bool:
        """Fold one counted event of the session; True when the session is engaged."""
        if ts < self.first:
            self.first = ts
        elif ts > self.last:
            self.last = ts
        if kind == "pageview":
            self.pageviews += 1
        elif kind == "conversion":
            self.conversions += 1
        return (self.last - self.first > ENGAGED_MS or self.conversions > 0
                or self.pageviews >= 2)

    def dump(self) -> list[Any]:
        return [self.site, self.start, self.first, self.last, self.pageviews,
                self.conversions, self.values, self.offset]

    @classmethod
    def load(cls, data: Sequence[Any]) -> Tracker:
        t = cls(data[0], data[1], data[2], data[6])
        t.last, t.pageviews, t.conversions, t.offset = data[3], data[4], data[5], data[7]
        return t

    @classmethod
    def from_old_state(cls, site: str, start: int, offset: int,
                       data: Sequence[Any]) -> Tracker | None:
        """A session kept inside a window state written before 0007 ([first, last,
        pageviews, conversions, values]); None when it is engaged already."""
        t = cls(site, start, data[0], data[4])
        t.last, t.pageviews, t.conversions, t.offset = data[1], data[2], data[3], offset
        engaged = (t.last - t.first > ENGAGED_MS or t.conversions > 0 or t.pageviews >= 2)
        return None if engaged else t
