"""Rule-based attribution models (GA / Snowplow style) over a touch history.

Pure functions, no I/O. See docs/attribution.md for the formulas and a worked example.

Every model reduces to non-negative integer weights; float parameters (time-decay weights,
position weights) are converted with ``float.as_integer_ratio``, which is exact. The revenue
is split from those integers with the largest-remainder method, so the split is exact and
its tie-breaking cannot be disturbed by float noise. A touch's ``credit`` is its share as a
float: rounded once from the exact ratio (time decay: the float weight over the ``fsum`` of
the float weights, within an ulp or two), so equal shares give equal floats and a model's
credits sum to 1 within a few ulps.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import MAX_EMAX, MAX_PREC, MIN_EMIN, ROUND_HALF_EVEN, Context, Decimal

from streams.attribution.touchpoints import Touchpoint, direct_none, sorted_touchpoints

DAY_MS = 86_400_000

MODELS: tuple[str, ...] = (
    "first_touch",
    "last_touch",
    "last_non_direct",
    "linear",
    "time_decay",
    "position_based",
)
SINGLE_TOUCH_MODELS: frozenset[str] = frozenset({"first_touch", "last_touch", "last_non_direct"})

# Decimal arithmetic below must never round: it only rescales.
_EXACT = Context(prec=MAX_PREC, Emax=MAX_EMAX, Emin=MIN_EMIN, rounding=ROUND_HALF_EVEN)


@dataclass(frozen=True, slots=True)
class Credit:
    """The share of one conversion given to one touch by one model.

    ``touch_index`` is the touch's position in :func:`touchpoints_in_window` (0 = first).
    """

    model: str
    touch_index: int
    touchpoint: Touchpoint
    credit: float
    revenue_credit: Decimal


def touchpoints_in_window(
    touchpoints: Sequence[Touchpoint], conversion_ts_ms: int, lookback_ms: int
) -> tuple[Touchpoint, ...]:
    """The touches with ``conversion_ts_ms - lookback_ms <= ts_ms <= conversion_ts_ms``, sorted.

    With none, a single Direct/(none) touch at the conversion time: a conversion with no
    known marketing touch is reported as direct traffic, as GA does.
    """
    start = conversion_ts_ms - lookback_ms
    inside = [tp for tp in touchpoints if start <= tp.ts_ms <= conversion_ts_ms]
    if not inside:
        return (direct_none(conversion_ts_ms),)
    return tuple(sorted_touchpoints(inside))


def _exact_ints(values: Sequence[float]) -> list[int]:
    """Integers proportional to non-negative floats, exactly (floats are dyadic rationals)."""
    ratios = [v.as_integer_ratio() for v in values]
    den = max([d for _, d in ratios])  # all denominators are powers of two: this is the LCM
    return [n * (den // d) for n, d in ratios]


def _time_decay_floats(window: Sequence[Touchpoint], half_life_ms: int) -> list[float]:
    # 2^(-(conversion - ts)/half_life) up to a constant factor; anchored at the newest touch
    # instead of the conversion so the weights cannot all underflow to 0 for a short half-life.
    newest = window[-1].ts_ms
    return [2.0 ** ((tp.ts_ms - newest) / half_life_ms) for tp in window]


def _position_weights(n: int, first: int, middle: int, last: int) -> list[int]:
    if n == 1:
        return [1]
    if n == 2:
        return [first, last]  # no middle: first and last share in proportion
    k = n - 2  # the middle weight is spread evenly: scale everything by k to stay integral
    return [first * k, *([middle] * k), last * k]


def _split_units(units: int, weights: Sequence[int], total: int) -> list[int]:
    """Split an integer amount in proportion to ``weights`` (largest remainder).

    Each part is the floor of its exact quota; the units left over go one each to the parts
    with the largest remainders, ties to the lowest index (the earliest touch). A negative
    amount is split as its absolute value with the sign put back, so refunds mirror sales.
    """
    amount = -units if units < 0 else units
    parts: list[int] = []
    remainders: list[int] = []
    for w in weights:
        q, r = divmod(amount * w, total)
        parts.append(q)
        remainders.append(r)
    left = amount - sum(parts)
    if left:
        # sort is stable, also with reverse=True: equal remainders keep index order.
        order = sorted(range(len(parts)), key=remainders.__getitem__, reverse=True)
        for i in order[:left]:
            parts[i] += 1
    if units < 0:
        return [-p for p in parts]
    return parts


def _to_units(revenue: Decimal, scale: int) -> int:
    """Revenue in units of 10^-scale, rounded half-even if it has more decimals."""
    if not revenue.is_finite():
        raise ValueError(f"revenue must be finite, got {revenue}")
    exp = Decimal(1).scaleb(-scale, _EXACT)
    return int(revenue.quantize(exp, ROUND_HALF_EVEN, _EXACT).scaleb(scale, _EXACT))


def attribute(
    touchpoints: Sequence[Touchpoint],
    conversion_ts_ms: int,
    revenue: Decimal = Decimal(0),
    *,
    lookback_ms: int = 30 * DAY_MS,
    half_life_ms: int = 7 * DAY_MS,
    position_weights: tuple[float, float, float] = (0.4, 0.2, 0.4),
    revenue_scale: int = 4,
    models: Sequence[str] = MODELS,
) -> dict[str, list[Credit]]:
    """Credit one conversion to its touches under each of ``models``.

    Returns ``{model: credits ordered by touch_index}``. Single-touch models (first_touch,
    last_touch, last_non_direct) return just the credited touch; multi-touch models return
    every touch in the window, zero credits included, so their lists line up.

    ``revenue`` is rounded half-even to ``revenue_scale`` decimals if it has more; each
    model's ``revenue_credit`` parts, all with exactly ``revenue_scale`` decimals, add up to
    that value exactly. The input order of ``touchpoints`` does not matter.
    """
    for model in models:
        if model not in MODELS:
            raise ValueError(f"unknown attribution model {model!r}; known: {', '.join(MODELS)}")
    if lookback_ms < 0:
        raise ValueError(f"lookback_ms must be >= 0, got {lookback_ms}")
    if half_life_ms <= 0:
        raise ValueError(f"half_life_ms must be > 0, got {half_life_ms}")
    if revenue_scale < 0:
        raise ValueError(f"revenue_scale must be >= 0, got {revenue_scale}")
    if not isinstance(revenue, Decimal):
        revenue = Decimal(revenue)

    window = touchpoints_in_window(touchpoints, conversion_ts_ms, lookback_ms)
    n = len(window)
    units = _to_units(revenue, revenue_scale)
    unit = Decimal(1).scaleb(-revenue_scale, _EXACT)
    amounts: dict[int, Decimal] = {}  # linear and position splits repeat the same parts

    def money(u: int) -> Decimal:
        got = amounts.get(u)
        if got is None:
            got = amounts[u] = _EXACT.multiply(u, unit)
        return got

    zero = money(0)
    pos: list[int] | None = None
    result: dict[str, list[Credit]] = {}
    for model in models:
        if model in SINGLE_TOUCH_MODELS:
            if model == "first_touch":
                i = 0
            elif model == "last_touch":
                i = n - 1
            else:  # last_non_direct: the last non-Direct touch, else (all Direct) the last
                i = n - 1
                for j in range(n - 1, -1, -1):
                    if not window[j].is_direct:
                        i = j
                        break
            result[model] = [Credit(model, i, window[i], 1.0, money(units))]
            continue

        if model == "linear":
            weights = [1] * n
            total = n
            shares = [1 / n] * n
        elif model == "time_decay":
            floats = _time_decay_floats(window, half_life_ms)
            weights = _exact_ints(floats)
            total = sum(weights)
            # The exact integers can be too large for a float; the float weights are the same
            # values, so divide those (within an ulp or two of the exact share).
            ftotal = math.fsum(floats)
            shares = [f / ftotal for f in floats]
        else:
            if pos is None:
                pos = _checked_position_weights(position_weights)
            weights = _position_weights(n, *pos)
            total = sum(weights)
            shares = [w / total for w in weights]  # exact ratio, rounded once
        if units and model == "linear":
            # Equal quotas, so equal remainders: the leftover units go to the earliest touches.
            q, r = divmod(-units if units < 0 else units, n)
            big, small = (money(q + 1), money(q)) if units > 0 else (money(-q - 1), money(-q))
            revenues = [big] * r + [small] * (n - r)
        elif units:
            revenues = [money(u) for u in _split_units(units, weights, total)]
        else:
            revenues = [zero] * n
        result[model] = [
            Credit(model, i, tp, share, rev)
            for i, (tp, share, rev) in enumerate(zip(window, shares, revenues, strict=True))
        ]
    return result


def _checked_position_weights(weights: tuple[float, float, float]) -> list[int]:
    if len(weights) != 3:
        raise ValueError(f"position_weights needs (first, middle, last), got {weights!r}")
    floats = [float(w) for w in weights]
    for w in floats:
        if not (math.isfinite(w) and w >= 0.0):
            raise ValueError(f"position_weights must be finite and >= 0, got {weights!r}")
    if floats[0] + floats[2] <= 0.0:
        raise ValueError(f"position_weights needs first + last > 0, got {weights!r}")
    ints = _exact_ints(floats)
    g = math.gcd(*ints)  # (0.4, 0.2, 0.4) -> (2, 1, 2): small ints divide fast
    return [w // g for w in ints]
