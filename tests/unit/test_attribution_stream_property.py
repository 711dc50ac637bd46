"""The stream's attribution (sessionizer + attributor, as the worker runs them) against an
independent reference: sessions re-derived by the plain 30-minute / new-source rule, credits
by tests/unit/attribution_reference.py (exact fractions)."""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.attribution.stream import Attributor
from streams.attribution.touchpoints import Touchpoint
from streams.pipeline import Ctx
from streams.sessionize import Sessionizer
from streams.sessions import SessionRules
from tests.unit.attribution_reference import ref_attribute

MIN, DAY = 60_000, 86_400_000
T0 = 1_760_000_000_000
LOOKBACK, HALF_LIFE = 30 * DAY, 7 * DAY
# kind -> (source, medium, campaign, channel); "" source means direct/internal
ARRIVALS = {
    "direct": ("(direct)", "(none)", "", "Direct"),
    "google": ("google", "organic", "", "Organic Search"),
    "mail": ("newsletter", "email", "spring", "Email"),
    "ads": ("facebook", "cpc", "retarget", "Paid Social"),
    "inner": ("(direct)", "(none)", "", "Direct"),  # internal click: never a new source
}


class MemoryTable:
    def __init__(self) -> None:
        self.data: dict[bytes, dict[str, Any]] = {}

    def get(self, key: bytes, partition: int | None = None) -> dict[str, Any] | None:
        return self.data.get(key)


def row(kind: str, ts: int, revenue: str) -> Ctx:
    source, medium, campaign, channel = ARRIVALS["direct" if kind == "buy" else kind]
    ctx = Ctx(b"", partition=0)
    ctx.envelope = {"received_at": ts}
    ctx.row = {
        "event_id": str(uuid.uuid4()), "site_id": "p", "visitor_id": "v", "user_id": "",
        "type": "conversion" if kind == "buy" else "pageview",
        "name": "purchase" if kind == "buy" else "", "path": "/", "props": {},
        "revenue": revenue if kind == "buy" else "0", "currency": "EUR", "is_bot": 0,
        "source": source, "medium": medium, "utm_campaign": campaign, "utm_term": "",
        "utm_content": "", "click_id_type": "", "channel": channel, "referrer_host": "",
        "device_type": "desktop", "browser": "", "os": "", "country": "", "_ts_ms": ts,
    }
    return ctx


def reference_touchpoints(history: list[tuple[int, str]]) -> list[tuple[int, Touchpoint]]:
    """(event index, touchpoint) for every session start, by the plain rules."""
    out: list[tuple[int, Touchpoint]] = []
    last_ts, key = None, None
    for i, (ts, kind) in enumerate(history):
        source, medium, campaign, channel = ARRIVALS["direct" if kind == "buy" else kind]
        new_key = "" if source == "(direct)" else f"{source}|{medium}|{campaign}"
        if last_ts is None or ts - last_ts > 30 * MIN or (new_key and new_key != key):
            out.append((i, Touchpoint(ts, channel, source, medium, campaign)))
            key = new_key
        last_ts = ts
    return out


history_strategy = st.lists(
    st.tuples(st.sampled_from([0, 5 * MIN, 29 * MIN, 31 * MIN, 3 * 3600_000, DAY, 4 * DAY,
                               9 * DAY]),
              st.sampled_from(["direct", "google", "mail", "ads", "inner", "buy", "buy"])),
    min_size=1, max_size=40)


@settings(max_examples=150, deadline=None)
@given(history_strategy, st.sampled_from(["0", "99.99", "10", "0.01"]))
def test_stream_credits_match_the_reference(steps: list[tuple[int, str]], revenue: str) -> None:
    ts, history = T0, []
    for gap, kind in steps:
        ts += gap + 1000
        history.append((ts, kind))
    attributor = Attributor(lookback_ms=LOOKBACK, half_life_ms=HALF_LIFE, max_touchpoints=1000)
    rules = SessionRules(split_at_midnight=False, max_sessions=1000, lateness_ms=10**12)
    sessionizer = Sessionizer(MemoryTable(), rules, attributor=attributor)  # type: ignore[arg-type]
    sessionizer.begin_batch()
    for ts, kind in history:
        sessionizer(row(kind, ts, revenue))
    starts = reference_touchpoints(history)
    conversions = [(i, ts) for i, (ts, kind) in enumerate(history) if kind == "buy"]
    assert len(attributor.conversions) == len(conversions)
    for (index, ts), conv in zip(conversions, attributor.conversions, strict=True):
        known = [tp for j, tp in starts if j <= index]
        expected = ref_attribute(known, ts, Decimal(revenue), lookback_ms=LOOKBACK,
                                 half_life_ms=HALF_LIFE)
        got = [c for c in attributor.credits if c["conversion_id"] == conv["conversion_id"]]
        for model, ref in expected.items():
            mine = [c for c in got if c["model"] == model]
            single = model in ("first_touch", "last_touch", "last_non_direct")
            ref = [r for r in ref if r.share > 0] if single else ref
            assert [c["channel"] for c in mine] == [r.touchpoint.channel for r in ref], model
            assert [c["credit"] for c in mine] == [
                pytest.approx(float(r.share), abs=1e-9) for r in ref], model
            assert [Decimal(c["revenue_credit"]) for c in mine] == [r.revenue for r in ref]
            assert sum(Decimal(c["revenue_credit"]) for c in mine) == Decimal(revenue)
