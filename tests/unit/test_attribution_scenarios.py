"""Hand-worked attribution scenarios with exact expected credits and revenue shares.

Every number below was worked out by hand (see docs/attribution.md) and is written out as a
literal; nothing here calls the reference implementation.

Revenue split rule: each touch gets the floor of its exact share of the revenue in units of
10^-scale; the units left over go one each to the largest remainders, ties to the EARLIEST
touch. So 0.01 split three ways at scale 4 is 0.0034 + 0.0033 + 0.0033 (100 units = 33+33+33
with remainder 1/3 each: a three-way tie, won by touch 0).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import pytest

from streams.attribution.models import MODELS, attribute
from streams.attribution.touchpoints import Touchpoint, direct_none, merge_touchpoints

DAY = 86_400_000
CONV = 1_735_689_600_000  # 2025-01-01T00:00:00Z


def touch(day: float, channel: str, source: str = "", session: str = "") -> Touchpoint:
    return Touchpoint(CONV + round(day * DAY), channel, source=source, session_id=session)


# (touch_index, channel, credit, revenue as printed)
Row = tuple[int, str, float, str]


@dataclass(frozen=True)
class Scenario:
    name: str
    touches: tuple[Touchpoint, ...]
    revenue: str
    expected: dict[str, list[Row]]
    kwargs: dict[str, Any] = field(default_factory=dict)


# --- four-touch path: Organic Search day -20, Paid Social -10, Email -3, Direct 0 -----------
FOUR = (
    touch(-20, "Organic Search", "google"),
    touch(-10, "Paid Social", "facebook"),
    touch(-3, "Email", "newsletter"),
    touch(0, "Direct", "(direct)"),
)
# Time decay, half-life 7 days: weight = 2^(-age_days / 7)
#   2^(-20/7) = 0.138011189209226542206
#   2^(-10/7) = 0.371498572284237106200
#   2^(-3/7)  = 0.742997144568474212400   (= 2 * 2^(-10/7): 7 days apart)
#   2^0       = 1
#   sum       = 2.252506906061937860806
# shares = weight / sum:
TD1 = 0.061270040432644785405
TD2 = 0.164926718441777731033
TD3 = 0.329853436883555462067
TD4 = 0.443949804242022021494
# Revenue 100.00 at scale 2 = 10000 cents; exact quotas 612.70, 1649.27, 3298.53, 4439.50;
# floors 612 + 1649 + 3298 + 4439 = 9998, 2 cents left: remainders .70 (touch 0) and
# .53 (touch 2) are the largest -> 6.13, 16.49, 32.99, 44.39.
# At scale 4 = 1000000 units: quotas 61270.04, 164926.72, 329853.44, 443949.80; floors sum
# to 999998, 2 left: remainders .80 (touch 3) and .72 (touch 1) -> 6.1270, 16.4927, 32.9853,
# 44.3950.
FOUR_SCALE_2 = {
    "first_touch": [(0, "Organic Search", 1.0, "100.00")],
    "last_touch": [(3, "Direct", 1.0, "100.00")],
    "last_non_direct": [(2, "Email", 1.0, "100.00")],
    "linear": [
        (0, "Organic Search", 0.25, "25.00"),
        (1, "Paid Social", 0.25, "25.00"),
        (2, "Email", 0.25, "25.00"),
        (3, "Direct", 0.25, "25.00"),
    ],
    "time_decay": [
        (0, "Organic Search", TD1, "6.13"),
        (1, "Paid Social", TD2, "16.49"),
        (2, "Email", TD3, "32.99"),
        (3, "Direct", TD4, "44.39"),
    ],
    # 40% first, 40% last, 20% / 2 = 10% to each of the two middle touches
    "position_based": [
        (0, "Organic Search", 0.4, "40.00"),
        (1, "Paid Social", 0.1, "10.00"),
        (2, "Email", 0.1, "10.00"),
        (3, "Direct", 0.4, "40.00"),
    ],
}
FOUR_SCALE_4 = {
    "first_touch": [(0, "Organic Search", 1.0, "100.0000")],
    "last_touch": [(3, "Direct", 1.0, "100.0000")],
    "last_non_direct": [(2, "Email", 1.0, "100.0000")],
    "linear": [
        (0, "Organic Search", 0.25, "25.0000"),
        (1, "Paid Social", 0.25, "25.0000"),
        (2, "Email", 0.25, "25.0000"),
        (3, "Direct", 0.25, "25.0000"),
    ],
    "time_decay": [
        (0, "Organic Search", TD1, "6.1270"),
        (1, "Paid Social", TD2, "16.4927"),
        (2, "Email", TD3, "32.9853"),
        (3, "Direct", TD4, "44.3950"),
    ],
    "position_based": [
        (0, "Organic Search", 0.4, "40.0000"),
        (1, "Paid Social", 0.1, "10.0000"),
        (2, "Email", 0.1, "10.0000"),
        (3, "Direct", 0.4, "40.0000"),
    ],
}

# --- cross-device stitching ------------------------------------------------------------
# An anonymous phone saw a Paid Social ad (day -12) and came back Direct (day -1) in a
# session that was later signed in, so the user's desktop history has that session too.
# The desktop also has an Email visit (day -5) and the Direct purchase session (day 0).
PHONE = (
    touch(-12, "Paid Social", "instagram", session="phone-1"),
    touch(-1, "Direct", "(direct)", session="shared-7"),
)
DESKTOP = (
    touch(-5, "Email", "newsletter", session="desk-1"),
    touch(-1, "Direct", "(direct)", session="shared-7"),
    touch(0, "Direct", "(direct)", session="desk-2"),
)
STITCHED = merge_touchpoints(DESKTOP, PHONE, max_kept=50, horizon_ms=90 * DAY, now_ms=CONV)

SCENARIOS = [
    Scenario(
        "single touch",
        (touch(-2, "Paid Search", "google"),),
        "49.99",
        {m: [(0, "Paid Search", 1.0, "49.9900")] for m in MODELS},
    ),
    Scenario(
        "direct-only path",
        (touch(-5, "Direct"), touch(-1, "Direct")),
        "10.00",
        {
            "first_touch": [(0, "Direct", 1.0, "10.00")],
            "last_touch": [(1, "Direct", 1.0, "10.00")],
            # nothing but Direct: reported as Direct, on the last touch
            "last_non_direct": [(1, "Direct", 1.0, "10.00")],
            "linear": [(0, "Direct", 0.5, "5.00"), (1, "Direct", 0.5, "5.00")],
            # 2^(-5/7) = 0.609506827102237720, 2^(-1/7) = 0.905723664263906672
            # quotas 402.54 and 597.46 cents: floors 402 + 597, 1 cent to the larger remainder
            "time_decay": [
                (0, "Direct", 0.402253538702683645, "4.02"),
                (1, "Direct", 0.597746461297316355, "5.98"),
            ],
            "position_based": [(0, "Direct", 0.5, "5.00"), (1, "Direct", 0.5, "5.00")],
        },
        {"revenue_scale": 2},
    ),
    Scenario(
        "touch outside the window -> Direct/(none) at the conversion",
        (touch(-45, "Organic Search", "google"),),
        "20",
        {m: [(0, "Direct", 1.0, "20.0000")] for m in MODELS},
    ),
    Scenario("four-touch path, cents", FOUR, "100.00", FOUR_SCALE_2, {"revenue_scale": 2}),
    Scenario("four-touch path, default scale 4", FOUR, "100.00", FOUR_SCALE_4),
    Scenario(
        "four-touch path, refund",
        FOUR,
        "-100.00",
        {
            "last_non_direct": [(2, "Email", 1.0, "-100.00")],
            "time_decay": [
                (0, "Organic Search", TD1, "-6.13"),
                (1, "Paid Social", TD2, "-16.49"),
                (2, "Email", TD3, "-32.99"),
                (3, "Direct", TD4, "-44.39"),
            ],
        },
        {"revenue_scale": 2},
    ),
    Scenario(
        "four-touch path, zero revenue",
        FOUR,
        "0",
        {
            "linear": [
                (0, "Organic Search", 0.25, "0.0000"),
                (1, "Paid Social", 0.25, "0.0000"),
                (2, "Email", 0.25, "0.0000"),
                (3, "Direct", 0.25, "0.0000"),
            ]
        },
    ),
    Scenario(
        "two touches, position based 50/50 (9999 cents: tie -> earlier touch)",
        (touch(-6, "Paid Social"), touch(-1, "Email")),
        "99.99",
        {"position_based": [(0, "Paid Social", 0.5, "50.00"), (1, "Email", 0.5, "49.99")]},
        {"revenue_scale": 2},
    ),
    Scenario(
        "two touches, custom weights 30/40/30 renormalised to 50/50",
        (touch(-6, "Paid Social"), touch(-1, "Email")),
        "10",
        {"position_based": [(0, "Paid Social", 0.5, "5.00"), (1, "Email", 0.5, "5.00")]},
        {"revenue_scale": 2, "position_weights": (0.3, 0.4, 0.3)},
    ),
    Scenario(
        "two touches, custom weights 20/60/60 renormalised to 25/75",
        (touch(-6, "Paid Social"), touch(-1, "Email")),
        "10",
        {"position_based": [(0, "Paid Social", 0.25, "2.50"), (1, "Email", 0.75, "7.50")]},
        {"revenue_scale": 2, "position_weights": (0.2, 0.6, 0.6)},
    ),
    Scenario(
        "five touches, position based: 20% over three middles (tie on 2/3 cent)",
        tuple(
            touch(-d, c)
            for d, c in [
                (9, "Display"),
                (7, "Email"),
                (5, "Referral"),
                (3, "Email"),
                (1, "Paid Search"),
            ]
        ),
        "100.00",
        # middles 0.2/3 = 1/15 each = 666.67 cents: floors 666 * 3 + 4000 * 2 = 9998, 2 cents to
        # the three tied middle remainders (2/3 each), earliest first
        {
            "position_based": [
                (0, "Display", 0.4, "40.00"),
                (1, "Email", 1 / 15, "6.67"),
                (2, "Referral", 1 / 15, "6.67"),
                (3, "Email", 1 / 15, "6.66"),
                (4, "Paid Search", 0.4, "40.00"),
            ]
        },
        {"revenue_scale": 2},
    ),
    Scenario(
        "last non-direct skips trailing Direct touches",
        (touch(-8, "Email"), touch(-4, "Organic Search"), touch(-2, "Direct"), touch(0, "Direct")),
        "30",
        {
            "last_touch": [(3, "Direct", 1.0, "30.0000")],
            "last_non_direct": [(1, "Organic Search", 1.0, "30.0000")],
        },
    ),
    Scenario(
        "0.01 linear over three touches, scale 4",
        (touch(-3, "Email"), touch(-2, "Referral"), touch(-1, "Direct")),
        "0.01",
        {
            "linear": [
                (0, "Email", 1 / 3, "0.0034"),
                (1, "Referral", 1 / 3, "0.0033"),
                (2, "Direct", 1 / 3, "0.0033"),
            ]
        },
    ),
    Scenario(
        "0.01 linear over three touches, scale 2",
        (touch(-3, "Email"), touch(-2, "Referral"), touch(-1, "Direct")),
        "0.01",
        {
            "linear": [
                (0, "Email", 1 / 3, "0.01"),
                (1, "Referral", 1 / 3, "0.00"),
                (2, "Direct", 1 / 3, "0.00"),
            ]
        },
        {"revenue_scale": 2},
    ),
    Scenario(
        "-0.01 refund linear over three touches, scale 4",
        (touch(-3, "Email"), touch(-2, "Referral"), touch(-1, "Direct")),
        "-0.01",
        {
            "linear": [
                (0, "Email", 1 / 3, "-0.0034"),
                (1, "Referral", 1 / 3, "-0.0033"),
                (2, "Direct", 1 / 3, "-0.0033"),
            ]
        },
    ),
    Scenario(
        "cross-device: phone history merged into the user's",
        STITCHED,
        "60.00",
        {
            "first_touch": [(0, "Paid Social", 1.0, "60.00")],
            "last_touch": [(3, "Direct", 1.0, "60.00")],
            "last_non_direct": [(1, "Email", 1.0, "60.00")],
            "linear": [
                (0, "Paid Social", 0.25, "15.00"),
                (1, "Email", 0.25, "15.00"),
                (2, "Direct", 0.25, "15.00"),
                (3, "Direct", 0.25, "15.00"),
            ],
            "position_based": [
                (0, "Paid Social", 0.4, "24.00"),
                (1, "Email", 0.1, "6.00"),
                (2, "Direct", 0.1, "6.00"),
                (3, "Direct", 0.4, "24.00"),
            ],
        },
        {"revenue_scale": 2},
    ),
]

CASES = [
    pytest.param(s, model, id=f"{s.name} | {model}") for s in SCENARIOS for model in s.expected
]


@pytest.mark.parametrize(("scenario", "model"), CASES)
def test_scenario(scenario: Scenario, model: str) -> None:
    got = attribute(scenario.touches, CONV, Decimal(scenario.revenue), **scenario.kwargs)[model]
    rows = [(c.touch_index, c.touchpoint.channel, c.credit, str(c.revenue_credit)) for c in got]
    expected = scenario.expected[model]
    assert [(i, ch, rev) for i, ch, _, rev in rows] == [(i, ch, rev) for i, ch, _, rev in expected]
    for (_, _, credit, _), (_, _, want, _) in zip(rows, expected, strict=True):
        assert credit == pytest.approx(want, rel=0, abs=1e-15)
    assert sum(Decimal(r) for *_, r in rows) == Decimal(scenario.revenue)


def test_every_model_covered_by_the_four_touch_path() -> None:
    assert set(FOUR_SCALE_2) == set(MODELS) == set(FOUR_SCALE_4)


def test_outside_window_credits_the_synthetic_direct_none() -> None:
    got = attribute([touch(-45, "Organic Search", "google")], CONV, Decimal(20))
    for model in MODELS:
        assert [c.touchpoint for c in got[model]] == [direct_none(CONV)]
        assert got[model][0].touchpoint.source == "(direct)"
        assert got[model][0].touchpoint.medium == "(none)"


def test_stitched_history() -> None:
    # the shared session is kept once; the result is sorted and independent of merge order
    stitched = STITCHED
    assert stitched == (PHONE[0], DESKTOP[0], DESKTOP[1], DESKTOP[2])
    swapped = merge_touchpoints(PHONE, DESKTOP, max_kept=50, horizon_ms=90 * DAY, now_ms=CONV)
    assert swapped == stitched
    # without stitching, the desktop alone would give first touch to Email
    alone = attribute(DESKTOP, CONV, Decimal(60), models=["first_touch"])["first_touch"]
    assert alone[0].touchpoint.channel == "Email"
