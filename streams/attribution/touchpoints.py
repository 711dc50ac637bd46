"""Marketing touchpoints and the bounded, sorted touch history kept per visitor or user.

A history is a tuple of :class:`Touchpoint` sorted by ``ts_ms`` (ties broken by every other
field, so the order never depends on arrival order). Histories are updated with
:func:`add_touchpoint` and combined for identity stitching with :func:`merge_touchpoints`;
both apply the same rules (see :func:`normalise_touchpoints`). Everything here is pure.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from operator import attrgetter

DIRECT = "Direct"


@dataclass(frozen=True, slots=True)
class Touchpoint:
    """One marketing touch: the start of a session and how the visitor arrived."""

    ts_ms: int  # session start time, epoch ms UTC
    channel: str  # GA4-style default channel group, e.g. "Organic Search", "Direct"
    source: str = ""
    medium: str = ""
    campaign: str = ""
    term: str = ""
    content: str = ""
    landing_page: str = ""
    click_id: str = ""
    session_id: str = ""

    @property
    def is_direct(self) -> bool:
        return self.channel == DIRECT


# The synthetic touch credited when a conversion has no touchpoint in its lookback window.
# Its ts_ms is a placeholder: use direct_none() to get one at the conversion time.
DIRECT_NONE = Touchpoint(ts_ms=0, channel=DIRECT, source="(direct)", medium="(none)")


def direct_none(ts_ms: int) -> Touchpoint:
    """The Direct/(none) touchpoint at ``ts_ms``."""
    return Touchpoint(ts_ms, DIRECT, "(direct)", "(none)")


def order_key(tp: Touchpoint) -> tuple[int, str, str, str, str, str, str, str, str, str]:
    """Total order on touchpoints: time first, then every other field."""
    return (
        tp.ts_ms,
        tp.channel,
        tp.source,
        tp.medium,
        tp.campaign,
        tp.term,
        tp.content,
        tp.landing_page,
        tp.click_id,
        tp.session_id,
    )


_ts_ms = attrgetter("ts_ms")


def sorted_touchpoints(touchpoints: Iterable[Touchpoint]) -> list[Touchpoint]:
    """Touchpoints sorted by :func:`order_key`; cheap when no two share a timestamp."""
    out = sorted(touchpoints, key=_ts_ms)
    for i in range(1, len(out)):
        if out[i].ts_ms == out[i - 1].ts_ms:
            # Equal timestamps: order the tie by content so the result is input-order free.
            out.sort(key=order_key)
            break
    return out


def normalise_touchpoints(
    touchpoints: Iterable[Touchpoint], *, max_kept: int, horizon_ms: int, now_ms: int
) -> tuple[Touchpoint, ...]:
    """Apply the history rules to any collection of touchpoints.

    1. drop touches older than ``now_ms - horizon_ms`` (touches after ``now_ms`` are kept);
    2. sort by :func:`order_key`;
    3. drop duplicates, keeping the first in that order: a touch is a duplicate when an
       earlier kept touch has the same non-empty ``session_id`` (a session starts once), or
       the same ``ts_ms``, ``channel``, ``source`` and ``campaign`` (a replayed event);
    4. over ``max_kept``, keep the first and the ``max_kept - 1`` newest touches, i.e. drop
       the oldest touches of the middle: the first touch is what first-touch and
       position-based credit, the newest ones matter to every other model.
    """
    if max_kept < 2:
        raise ValueError(f"max_kept must be >= 2 to keep the first and last, got {max_kept}")
    if horizon_ms < 0:
        raise ValueError(f"horizon_ms must be >= 0, got {horizon_ms}")
    cutoff = now_ms - horizon_ms
    ordered = sorted_touchpoints(tp for tp in touchpoints if tp.ts_ms >= cutoff)
    seen_sessions: set[str] = set()
    seen_keys: set[tuple[int, str, str, str]] = set()
    kept: list[Touchpoint] = []
    for tp in ordered:
        key = (tp.ts_ms, tp.channel, tp.source, tp.campaign)
        sid = tp.session_id
        if key in seen_keys or (sid and sid in seen_sessions):
            continue
        seen_keys.add(key)
        if sid:
            seen_sessions.add(sid)
        kept.append(tp)
    if len(kept) > max_kept:
        return (kept[0], *kept[len(kept) - max_kept + 1 :])
    return tuple(kept)


def add_touchpoint(
    existing: Sequence[Touchpoint],
    new: Touchpoint,
    *,
    max_kept: int,
    horizon_ms: int,
    now_ms: int,
) -> tuple[Touchpoint, ...]:
    """The history ``existing`` with ``new`` inserted (late touches land in time order)."""
    return normalise_touchpoints(
        (*existing, new), max_kept=max_kept, horizon_ms=horizon_ms, now_ms=now_ms
    )


def merge_touchpoints(
    a: Iterable[Touchpoint],
    b: Iterable[Touchpoint],
    *,
    max_kept: int,
    horizon_ms: int,
    now_ms: int,
) -> tuple[Touchpoint, ...]:
    """One history from two, e.g. an anonymous device's and the signed-in user's.

    Symmetric: ``merge_touchpoints(a, b, ...) == merge_touchpoints(b, a, ...)``.
    """
    return normalise_touchpoints((*a, *b), max_kept=max_kept, horizon_ms=horizon_ms, now_ms=now_ms)
