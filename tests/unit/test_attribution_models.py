"""Property tests: attribution models against an independent reference, plus invariants,
and the touch-history rules (add_touchpoint / merge_touchpoints)."""

from __future__ import annotations

import math
import os
from dataclasses import replace
from decimal import Decimal
from random import Random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streams.attribution.models import (
    MODELS,
    SINGLE_TOUCH_MODELS,
    attribute,
    touchpoints_in_window,
)
from streams.attribution.touchpoints import (
    DIRECT_NONE,
    Touchpoint,
    add_touchpoint,
    direct_none,
    merge_touchpoints,
)
from tests.unit.attribution_reference import ref_attribute, ref_window

HOUR = 3_600_000
DAY = 24 * HOUR
CONV = 1_700_000_000_000

CHANNELS = [
    "Direct",
    "Organic Search",
    "Paid Search",
    "Paid Social",
    "Organic Social",
    "Email",
    "Referral",
    "Display",
]
SOURCES = ["", "google", "facebook", "newsletter", "(direct)", "bing"]
CAMPAIGNS = ["", "spring", "retarget"]

# ATTRIBUTION_EXAMPLES=5000 for a longer soak run.
SETTINGS = settings(
    max_examples=int(os.environ.get("ATTRIBUTION_EXAMPLES", "300")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


@st.composite
def scenarios(draw: st.DrawFn) -> dict:
    """A conversion: touch history, revenue and model parameters."""
    lookback = draw(st.one_of(st.integers(HOUR, 120 * DAY), st.sampled_from([7 * DAY, 30 * DAY])))
    half_life = draw(st.one_of(st.integers(HOUR, 60 * DAY), st.just(7 * DAY)))
    # Ages (conversion - ts) mostly 0-120 days before the conversion, a few after it, and
    # the window edges and shared timestamps drawn on purpose.
    age = st.one_of(
        st.integers(-DAY, 120 * DAY),
        st.sampled_from([0, 1, DAY, 3 * DAY, lookback, lookback + 1, -1]),
    )
    touch = st.builds(
        Touchpoint,
        ts_ms=age.map(lambda a: CONV - a),
        channel=st.sampled_from(CHANNELS),
        source=st.sampled_from(SOURCES),
        campaign=st.sampled_from(CAMPAIGNS),
        session_id=st.sampled_from(["", "s1", "s2", "s3"]),
    )
    touches = draw(st.lists(touch, min_size=1, max_size=30))
    scale = draw(st.sampled_from([4, 4, 2, 0]))
    units = draw(
        st.one_of(
            st.integers(-(10**10), 10**10),
            st.sampled_from([0, 1, -1, 2, 3, 100, 10**6]),
        )
    )
    weights = draw(
        st.one_of(
            st.just((0.4, 0.2, 0.4)),
            st.tuples(st.floats(0, 1), st.floats(0, 1), st.floats(0, 1)).filter(
                lambda w: w[0] + w[2] > 0
            ),
        )
    )
    return {
        "touches": touches,
        "revenue": Decimal(units).scaleb(-scale),
        "lookback_ms": lookback,
        "half_life_ms": half_life,
        "position_weights": weights,
        "revenue_scale": scale,
    }


def run(s: dict, touches: list[Touchpoint] | None = None) -> dict:
    return attribute(
        s["touches"] if touches is None else touches,
        CONV,
        s["revenue"],
        lookback_ms=s["lookback_ms"],
        half_life_ms=s["half_life_ms"],
        position_weights=s["position_weights"],
        revenue_scale=s["revenue_scale"],
    )


@SETTINGS
@given(scenarios())
def test_matches_reference(s: dict) -> None:
    got = run(s)
    ref = ref_attribute(
        s["touches"],
        CONV,
        s["revenue"],
        lookback_ms=s["lookback_ms"],
        half_life_ms=s["half_life_ms"],
        position_weights=s["position_weights"],
        revenue_scale=s["revenue_scale"],
    )
    assert list(got) == list(MODELS)
    for model in MODELS:
        expected = ref[model]
        if model in SINGLE_TOUCH_MODELS:  # documented: only the credited touch is emitted
            expected = [c for c in expected if c.share > 0]
        assert [(c.touch_index, c.touchpoint) for c in got[model]] == [
            (r.index, r.touchpoint) for r in expected
        ], model
        for c, r in zip(got[model], expected, strict=True):
            assert abs(c.credit - float(r.share)) <= 1e-9, (model, c, r)
            assert c.revenue_credit == r.revenue, (model, c, r)


@SETTINGS
@given(scenarios())
def test_invariants(s: dict) -> None:
    got = run(s)
    window = touchpoints_in_window(s["touches"], CONV, s["lookback_ms"])
    start = CONV - s["lookback_ms"]
    inside = [tp for tp in s["touches"] if start <= tp.ts_ms <= CONV]
    expected_revenue = s["revenue"]  # generated with at most revenue_scale decimals
    for model, credits in got.items():
        assert credits, model
        if model in SINGLE_TOUCH_MODELS:
            assert len(credits) == 1
            assert credits[0].credit == 1.0
        else:
            assert len(credits) == len(window)
        indexes = [c.touch_index for c in credits]
        assert indexes == sorted(set(indexes))
        for c in credits:
            assert c.model == model
            assert c.credit >= 0.0
            assert c.touchpoint == window[c.touch_index]
            if inside:
                assert start <= c.touchpoint.ts_ms <= CONV
                assert c.touchpoint in inside
            else:
                assert c.touchpoint == direct_none(CONV)
            assert c.revenue_credit.as_tuple().exponent == -s["revenue_scale"]
            if expected_revenue > 0:
                assert c.revenue_credit >= 0
            elif expected_revenue < 0:
                assert c.revenue_credit <= 0
            else:
                assert c.revenue_credit == 0
        assert abs(math.fsum(c.credit for c in credits) - 1.0) <= 1e-9, model
        assert abs(sum(c.credit for c in credits) - 1.0) <= 1e-9, model
        assert sum(c.revenue_credit for c in credits) == expected_revenue, model
    ts = [tp.ts_ms for tp in window]
    assert ts == sorted(ts)


@SETTINGS
@given(scenarios(), st.randoms(use_true_random=False))
def test_deterministic_and_order_independent(s: dict, rnd: Random) -> None:
    first = run(s)
    assert run(s) == first
    shuffled = list(s["touches"])
    rnd.shuffle(shuffled)
    assert run(s, shuffled) == first
    assert run(s, sorted(s["touches"], key=lambda tp: tp.ts_ms)) == first


@SETTINGS
@given(scenarios())
def test_window_matches_reference(s: dict) -> None:
    assert list(touchpoints_in_window(s["touches"], CONV, s["lookback_ms"])) == ref_window(
        s["touches"], CONV, s["lookback_ms"]
    )


def test_window_edges_are_inclusive() -> None:
    at_start = Touchpoint(CONV - 30 * DAY, "Email")
    too_old = Touchpoint(CONV - 30 * DAY - 1, "Paid Search")
    at_conv = Touchpoint(CONV, "Referral")
    after = Touchpoint(CONV + 1, "Display")
    window = touchpoints_in_window([after, at_conv, too_old, at_start], CONV, 30 * DAY)
    assert window == (at_start, at_conv)


def test_empty_history_is_direct_none() -> None:
    credits = attribute([], CONV, Decimal("5"))
    for model in MODELS:
        (c,) = credits[model]
        assert c.touchpoint == direct_none(CONV)
        assert c.touchpoint.is_direct
        assert (c.credit, c.revenue_credit) == (1.0, Decimal("5.0000"))
    assert direct_none(CONV) == Touchpoint(CONV, "Direct", "(direct)", "(none)")
    assert (DIRECT_NONE.channel, DIRECT_NONE.source, DIRECT_NONE.medium) == (
        "Direct",
        "(direct)",
        "(none)",
    )


def test_tiny_half_life_does_not_underflow() -> None:
    # 10 and 20 days at a 1 ms half-life: 2^-864000000 is 0.0 as a float.
    touches = [Touchpoint(CONV - 20 * DAY, "Email"), Touchpoint(CONV - 10 * DAY, "Referral")]
    credits = attribute(touches, CONV, Decimal("1"), half_life_ms=1, models=["time_decay"])
    assert [c.credit for c in credits["time_decay"]] == [0.0, 1.0]
    assert [c.revenue_credit for c in credits["time_decay"]] == [0, 1]


def test_revenue_with_more_decimals_is_rounded_half_even() -> None:
    touches = [Touchpoint(CONV - DAY, "Email"), Touchpoint(CONV, "Direct")]
    got = attribute(touches, CONV, Decimal("10.125"), revenue_scale=2, models=["linear"])
    assert [str(c.revenue_credit) for c in got["linear"]] == ["5.06", "5.06"]
    got = attribute(touches, CONV, Decimal("10.135"), revenue_scale=2, models=["linear"])
    assert [str(c.revenue_credit) for c in got["linear"]] == ["5.07", "5.07"]


def test_models_subset_and_order() -> None:
    got = attribute([Touchpoint(CONV, "Email")], CONV, models=["linear", "first_touch"])
    assert list(got) == ["linear", "first_touch"]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"models": ["u_shaped"]}, "unknown attribution model"),
        ({"half_life_ms": 0}, "half_life_ms"),
        ({"lookback_ms": -1}, "lookback_ms"),
        ({"revenue_scale": -1}, "revenue_scale"),
        ({"position_weights": (0.0, 1.0, 0.0)}, "first \\+ last"),
        ({"position_weights": (-0.1, 0.6, 0.5)}, "finite and >= 0"),
        ({"position_weights": (float("nan"), 0.6, 0.5)}, "finite and >= 0"),
    ],
)
def test_bad_arguments(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        attribute([Touchpoint(CONV, "Email")], CONV, Decimal(1), **kwargs)


def test_non_finite_revenue() -> None:
    with pytest.raises(ValueError, match="finite"):
        attribute([Touchpoint(CONV, "Email")], CONV, Decimal("NaN"))


# --- touch history ------------------------------------------------------------------------

NOW = CONV
KEEP = {"max_kept": 4, "horizon_ms": 90 * DAY, "now_ms": NOW}


def tp(day: int, channel: str = "Email", *, session: str = "", source: str = "") -> Touchpoint:
    return Touchpoint(NOW + day * DAY, channel, source=source, session_id=session)


def test_add_keeps_time_order_with_late_touch() -> None:
    history = (tp(-10, "Email"), tp(-2, "Paid Social"))
    late = tp(-5, "Organic Search")
    assert add_touchpoint(history, late, **KEEP) == (history[0], late, history[1])


def test_add_drops_duplicates() -> None:
    history = (tp(-10, session="a"), tp(-2, "Referral", session="b"))
    # same session id, later time: the session started at day -10, keep that
    assert add_touchpoint(history, tp(-1, "Direct", session="a"), **KEEP) == history
    # replayed event: same time, channel, source and campaign
    replay = Touchpoint(history[1].ts_ms, "Referral", landing_page="/x")
    assert add_touchpoint(history, replay, **KEEP) == history
    # empty session ids never match each other
    assert len(add_touchpoint((tp(-3),), tp(-4), **KEEP)) == 2


def test_add_drops_beyond_horizon() -> None:
    history = (tp(-100), tp(-89), tp(-1, "Direct"))
    assert add_touchpoint(history, tp(-95, "Display"), **KEEP) == history[1:]
    exactly = tp(-90, "Referral")
    assert add_touchpoint((), exactly, **KEEP) == (exactly,)


def test_cap_keeps_first_and_last_and_drops_oldest_middle() -> None:
    history: tuple[Touchpoint, ...] = ()
    days = [-30, -25, -20, -15, -10, -5]
    for d in days:
        history = add_touchpoint(history, tp(d, source=str(d)), **KEEP)
    assert [round((t.ts_ms - NOW) / DAY) for t in history] == [-30, -15, -10, -5]
    # a late touch older than the kept middle is the oldest middle: dropped straight away
    assert add_touchpoint(history, tp(-22), **KEEP) == history
    # a new first touch: the old first becomes the oldest middle and goes
    new_first = tp(-40)
    assert add_touchpoint(history, new_first, **KEEP) == (new_first, *history[1:])


def test_max_kept_must_keep_first_and_last() -> None:
    with pytest.raises(ValueError, match="max_kept"):
        add_touchpoint((), tp(0), max_kept=1, horizon_ms=DAY, now_ms=NOW)


def test_merge_stitches_devices() -> None:
    anon = (tp(-12, "Paid Social", session="a1"), tp(-1, "Direct", session="shared"))
    user = (tp(-5, "Email", session="u1"), tp(-1, "Direct", session="shared"))
    merged = merge_touchpoints(anon, user, **KEEP)
    assert merged == (anon[0], user[0], anon[1])
    assert merge_touchpoints(user, anon, **KEEP) == merged


history_touch = st.builds(
    Touchpoint,
    ts_ms=st.integers(NOW - 120 * DAY, NOW + DAY),
    channel=st.sampled_from(CHANNELS),
    source=st.sampled_from(SOURCES),
    campaign=st.sampled_from(CAMPAIGNS),
)


@st.composite
def unique_sessions(draw: st.DrawFn, max_size: int = 40) -> list[Touchpoint]:
    """Touches whose session ids are empty or distinct (so dedup never picks a later one)."""
    touches = draw(st.lists(history_touch, max_size=max_size))
    with_ids = draw(st.lists(st.booleans(), min_size=len(touches), max_size=len(touches)))
    return [
        Touchpoint(t.ts_ms, t.channel, t.source, campaign=t.campaign, session_id=f"s{i}")
        if has_id
        else t
        for i, (t, has_id) in enumerate(zip(touches, with_ids, strict=True))
    ]


@SETTINGS
@given(
    unique_sessions(),
    unique_sessions(max_size=5),
    st.integers(2, 10),
    st.integers(0, 150 * DAY),
    st.randoms(use_true_random=False),
)
def test_history_properties(
    a: list[Touchpoint], b: list[Touchpoint], max_kept: int, horizon: int, rnd: Random
) -> None:
    # the second device's session ids must not collide with the first's
    b = [replace(t, session_id=t.session_id and t.session_id + "b") for t in b]
    rules = {"max_kept": max_kept, "horizon_ms": horizon, "now_ms": NOW}
    merged = merge_touchpoints(a, b, **rules)
    candidates = [t for t in (*a, *b) if t.ts_ms >= NOW - horizon]
    assert len(merged) <= max_kept
    assert [t.ts_ms for t in merged] == sorted(t.ts_ms for t in merged)
    assert all(t in candidates for t in merged)
    assert merged == merge_touchpoints(b, a, **rules)
    assert merged == merge_touchpoints(merged, (), **rules)  # idempotent
    keys = [(t.ts_ms, t.channel, t.source, t.campaign) for t in merged]
    assert len(set(keys)) == len(keys)
    sids = [t.session_id for t in merged if t.session_id]
    assert len(set(sids)) == len(sids)
    if candidates:
        assert merged[0].ts_ms == min(t.ts_ms for t in candidates)
        assert merged[-1].ts_ms == max(t.ts_ms for t in candidates)
    else:
        assert merged == ()
    # adding one by one, in any order, ends where merging all at once does
    arrivals = [*a, *b]
    rnd.shuffle(arrivals)
    folded: tuple[Touchpoint, ...] = ()
    for t in arrivals:
        folded = add_touchpoint(folded, t, **rules)
    assert folded == merged
