"""Attribution in the stream: touchpoints kept in the visitor state, every conversion credited
under all models the moment it arrives.

- Every session start is a touchpoint (its landing channel, source, medium, campaign, term,
  content, page, click id). The history is bounded: horizon = the lookback window, at most
  `max_touchpoints`, always keeping the first and the last (streams/attribution/touchpoints).
- A conversion is an event of type `conversion`, or an event / pageview matching a goal
  (`event:signup`, `pageview:/thank-you`). It is attributed once, with the touchpoints known
  when it is processed (a touchpoint arriving later does not re-attribute it: deterministic
  under replay). A repeated `order_id` prop is not attributed twice.
- Output rows are keyed by conversion id, model and touch index, so a replay after a worker
  restart replaces rows instead of adding to them.
- Cross-device: once a visitor is linked to a user id (identify, or any event with a
  user_id), its touchpoints and later conversions go to the user's history instead
  (streams/identity.py), so a conversion on another device finds them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from schemas.timefmt import ms_to_text
from streams.attribution.models import attribute, touchpoints_in_window
from streams.attribution.touchpoints import Touchpoint, merge_touchpoints

DAY_MS = 86_400_000
ORDERS_CAP = 200


def parse_goals(spec: Sequence[str]) -> tuple[frozenset[str], frozenset[str]]:
    """["event:signup", "pageview:/thank-you"] -> (event names, pageview paths)."""
    names, paths = set(), set()
    for item in spec:
        kind, _, value = item.strip().partition(":")
        if kind == "event" and value:
            names.add(value)
        elif kind == "pageview" and value:
            paths.add(value)
        elif item.strip():
            raise ValueError(f"goal {item!r}: use event:NAME or pageview:/path")
    return frozenset(names), frozenset(paths)


def _encode(tp: Touchpoint) -> list[Any]:
    return [tp.ts_ms, tp.channel, tp.source, tp.medium, tp.campaign, tp.term, tp.content,
            tp.landing_page, tp.click_id, tp.session_id]


def _decode(raw: list[Any]) -> Touchpoint:
    return Touchpoint(*raw)


def _appends(history: Sequence[list[Any]], new: list[Any], max_kept: int,
             horizon_ms: int) -> bool:
    """True when merging `new` into the (normalised, time-ordered) encoded `history` just
    appends it: it is strictly the newest, its session is new, nothing falls out of the
    horizon and the cap is not reached (the common case: a visitor's next session)."""
    if not history:
        return True
    ts, sid = new[0], new[9]
    return (ts > history[-1][0] and len(history) < max_kept and bool(sid)
            and history[0][0] >= ts - horizon_ms and all(t[9] != sid for t in history))


@dataclass
class Attributor:
    lookback_ms: int = 30 * DAY_MS
    half_life_ms: int = 7 * DAY_MS
    max_touchpoints: int = 50
    goals: Sequence[str] = ()
    conversions: list[dict[str, Any]] = field(default_factory=list)
    credits: list[dict[str, Any]] = field(default_factory=list)
    #: per-site overrides of lookback_ms and goals (streams/site_options.py)
    site_lookback_ms: Mapping[str, int] = field(default_factory=dict)
    site_goals: Mapping[str, Sequence[str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        default = parse_goals(self.goals)
        self._goal_names, self._goal_paths = default
        self._site_goal_sets = {site: parse_goals(g) for site, g in self.site_goals.items()}

    def lookback_for(self, site: str) -> int:
        return self.site_lookback_ms.get(site, self.lookback_ms)

    def with_same_rules(self) -> Attributor:
        """A fresh attributor (own output lists) with the same models, windows and goals."""
        return Attributor(self.lookback_ms, self.half_life_ms, self.max_touchpoints,
                          self.goals, site_lookback_ms=self.site_lookback_ms,
                          site_goals=self.site_goals)

    def begin_batch(self) -> None:
        self.conversions = []
        self.credits = []

    @staticmethod
    def session_touchpoint(sess: dict[str, Any]) -> list[Any]:
        """A session start as an (encoded) touchpoint."""
        return _encode(Touchpoint(sess["start"], sess["channel"] or "Direct", sess["source"],
                                  sess["medium"], sess["campaign"], sess.get("term", ""),
                                  sess.get("content", ""), sess["entry"], sess.get("click", ""),
                                  sess["id"]))

    def touch(self, state: dict[str, Any], encoded: Sequence[list[Any]], site: str = "") -> None:
        """Fold (encoded) touchpoints into a visitor's or user's bounded history (the horizon
        is the site's lookback window)."""
        stored = state.get("tp") or []
        if len(encoded) == 1 and _appends(stored, encoded[0], self.max_touchpoints,
                                          self.lookback_for(site)):
            state["tp"] = [*stored, encoded[0]]  # what the merge below would give, cheaply
            return
        history = [_decode(t) for t in stored]
        new = [_decode(t) for t in encoded]
        newest = max(t.ts_ms for t in [*history, *new])
        kept = merge_touchpoints(history, new, max_kept=self.max_touchpoints,
                                 horizon_ms=self.lookback_for(site), now_ms=newest)
        state["tp"] = [_encode(t) for t in kept]

    def is_conversion(self, row: dict[str, Any]) -> bool:
        kind = row["type"]
        if kind == "conversion":
            return True
        names, paths = self._site_goal_sets.get(row["site_id"]) or (self._goal_names,
                                                                     self._goal_paths)
        return (kind == "event" and row["name"] in names) or (
            kind == "pageview" and row["path"] in paths)

    def convert(self, state: dict[str, Any], row: dict[str, Any], ts: int) -> None:
        """Attribute one conversion; rows are collected for this batch's output."""
        order = row["props"].get("order_id", "")
        if order:
            orders: list[str] = state.setdefault("orders", [])
            if order in orders:
                return
            orders.append(order)
            del orders[:-ORDERS_CAP]
        history = [_decode(t) for t in state.get("tp", ())]
        revenue = Decimal(row["revenue"] or "0")
        lookback_ms = self.lookback_for(row["site_id"])
        credits = attribute(history, ts, revenue, lookback_ms=lookback_ms,
                            half_life_ms=self.half_life_ms)
        window = touchpoints_in_window(history, ts, lookback_ms)
        conv_id, site, when = row["event_id"], row["site_id"], ms_to_text(ts)
        self.conversions.append({
            "conversion_id": conv_id, "site_id": site, "visitor_id": row["visitor_id"],
            "user_id": row["user_id"], "ts": when, "name": row["name"] or row["path"],
            "revenue": str(revenue), "currency": row["currency"], "order_id": order,
            "session_id": row.get("session_id", ""), "path_length": len(window),
            "time_to_convert_ms": max(0, ts - window[0].ts_ms),
            "first_channel": window[0].channel, "last_channel": window[-1].channel,
            "path": [t.channel for t in window],
        })
        for model, model_credits in credits.items():
            for c in model_credits:
                tp = c.touchpoint
                self.credits.append({
                    "conversion_id": conv_id, "site_id": site, "conversion_ts": when,
                    "model": model, "touch_index": c.touch_index,
                    "touch_ts": ms_to_text(tp.ts_ms), "channel": tp.channel,
                    "source": tp.source, "medium": tp.medium, "campaign": tp.campaign,
                    "term": tp.term, "content": tp.content, "landing_page": tp.landing_page,
                    "session_id": tp.session_id, "credit": c.credit,
                    "revenue_credit": str(c.revenue_credit), "currency": row["currency"],
                })
