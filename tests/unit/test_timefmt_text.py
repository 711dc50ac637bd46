"""ms_to_text (cached seconds + a milliseconds table) against datetime's own formatting."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from schemas.timefmt import ms_to_text

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@given(st.integers(-62_135_596_800_000 + 1, 253_402_300_799_999))
def test_ms_to_text_matches_datetime(ms: int) -> None:
    dt = EPOCH + timedelta(milliseconds=ms)
    want = f"{dt:%Y-%m-%d %H:%M:%S}.{dt.microsecond // 1000:03d}"
    assert ms_to_text(ms) == want
    assert ms_to_text(ms) == want  # cached second


def test_ms_to_text_edges() -> None:
    assert ms_to_text(0) == "1970-01-01 00:00:00.000"
    assert ms_to_text(-1) == "1969-12-31 23:59:59.999"
    assert ms_to_text(1_795_430_400_999) == "2026-11-23 10:40:00.999"
