"""Independent reference implementation of the attribution models, for tests only.

Written from the definitions in docs/attribution.md, in a deliberately different and naive
style from streams/attribution/models.py: exact ``Fraction`` shares, time-decay weights
evaluated with 60-digit ``Decimal`` powers anchored at the conversion (no float weights, no
underflow), and a revenue split that hands out leftover units one at a time by scanning for
the largest remainder. Speed is irrelevant here.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal, localcontext
from fractions import Fraction

from streams.attribution.touchpoints import Touchpoint

REF_MODELS = (
    "first_touch",
    "last_touch",
    "last_non_direct",
    "linear",
    "time_decay",
    "position_based",
)


@dataclass(frozen=True)
class RefCredit:
    model: str
    index: int
    touchpoint: Touchpoint
    share: Fraction
    revenue: Decimal


def ref_window(
    touchpoints: Sequence[Touchpoint], conversion_ts_ms: int, lookback_ms: int
) -> list[Touchpoint]:
    chosen = []
    for tp in touchpoints:
        if tp.ts_ms < conversion_ts_ms - lookback_ms:
            continue
        if tp.ts_ms > conversion_ts_ms:
            continue
        chosen.append(tp)
    # Declaration order of the fields starts with ts_ms: time first, then everything else.
    chosen.sort(key=dataclasses.astuple)
    if not chosen:
        chosen = [
            Touchpoint(ts_ms=conversion_ts_ms, channel="Direct", source="(direct)", medium="(none)")
        ]
    return chosen


def _decay_weight(age_ms: int, half_life_ms: int) -> Fraction:
    with localcontext() as ctx:
        ctx.prec = 60
        w = Decimal(2) ** (Decimal(-age_ms) / Decimal(half_life_ms))
    return Fraction(w)


def ref_shares(
    model: str,
    window: Sequence[Touchpoint],
    conversion_ts_ms: int,
    half_life_ms: int,
    position_weights: tuple[float, float, float],
) -> list[Fraction]:
    n = len(window)
    shares = [Fraction(0)] * n
    if model == "first_touch":
        shares[0] = Fraction(1)
    elif model == "last_touch":
        shares[n - 1] = Fraction(1)
    elif model == "last_non_direct":
        pick = n - 1  # all Direct: the last touch
        for i, tp in enumerate(window):
            if tp.channel != "Direct":
                pick = i
        shares[pick] = Fraction(1)
    elif model == "linear":
        shares = [Fraction(1, n) for _ in range(n)]
    elif model == "time_decay":
        weights = [_decay_weight(conversion_ts_ms - tp.ts_ms, half_life_ms) for tp in window]
        total = sum(weights)
        shares = [w / total for w in weights]
    elif model == "position_based":
        first, middle, last = (Fraction(x) for x in position_weights)
        if n == 1:
            shares = [Fraction(1)]
        elif n == 2:
            shares = [first / (first + last), last / (first + last)]
        else:
            total = first + middle + last
            shares = [first / total]
            for _ in range(n - 2):
                shares.append(middle / (n - 2) / total)
            shares.append(last / total)
    else:
        raise ValueError(model)
    return shares


def ref_split(revenue: Decimal, shares: Sequence[Fraction], scale: int) -> list[Decimal]:
    step = Decimal(1).scaleb(-scale)
    rounded = revenue.quantize(step, rounding=ROUND_HALF_EVEN)
    units = int(rounded * 10**scale)
    sign = -1 if units < 0 else 1
    amount = abs(units)
    quotas = [amount * s for s in shares]
    parts = [math.floor(q) for q in quotas]
    remainders = [q - p for q, p in zip(quotas, parts, strict=True)]
    left = amount - sum(parts)
    for _ in range(left):
        best = -1
        for i in range(len(parts)):
            if best == -1 or remainders[i] > remainders[best]:
                best = i
        parts[best] += 1
        remainders[best] = Fraction(-1)
    return [Decimal(sign * p) * step for p in parts]


def ref_attribute(
    touchpoints: Sequence[Touchpoint],
    conversion_ts_ms: int,
    revenue: Decimal,
    *,
    lookback_ms: int,
    half_life_ms: int,
    position_weights: tuple[float, float, float] = (0.4, 0.2, 0.4),
    revenue_scale: int = 4,
) -> dict[str, list[RefCredit]]:
    """Every touch in the window for every model, zero shares included."""
    window = ref_window(touchpoints, conversion_ts_ms, lookback_ms)
    out: dict[str, list[RefCredit]] = {}
    for model in REF_MODELS:
        shares = ref_shares(model, window, conversion_ts_ms, half_life_ms, position_weights)
        revenues = ref_split(revenue, shares, revenue_scale)
        out[model] = [
            RefCredit(model, i, window[i], shares[i], revenues[i]) for i in range(len(window))
        ]
    return out
