"""Python tracker: the HTTP transport's retry rules as pure functions."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from producers.tracker.backoff import backoff_delay, parse_retry_after, retryable


@pytest.mark.parametrize(("status", "again"), [
    (None, True), (500, True), (502, True), (503, True), (504, True), (429, True), (408, True),
    (400, False), (401, False), (403, False), (404, False), (413, False), (422, False),
])
def test_what_is_retried(status: int | None, again: bool) -> None:
    assert retryable(status) is again


def test_backoff_doubles_with_jitter_and_is_capped() -> None:
    assert [backoff_delay(n, 0.5, 30, rand=lambda: 0.5) for n in range(8)] == [
        0.5, 1, 2, 4, 8, 16, 30, 30]
    assert backoff_delay(3, 0.5, 30, rand=lambda: 0.0) == 2.0  # x0.5
    assert backoff_delay(3, 0.5, 30, rand=lambda: 0.999999) == pytest.approx(6.0, abs=1e-5)
    assert backoff_delay(10_000, 0.5, 30, rand=lambda: 0.5) == 30  # no overflow
    delays = {backoff_delay(2, 1.0, 60) for _ in range(50)}
    assert len(delays) > 1 and all(2.0 <= d < 6.0 for d in delays)


def test_retry_after_in_seconds_or_as_a_date() -> None:
    now = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)
    assert parse_retry_after("5") == 5.0
    assert parse_retry_after(" 120 ") == 120.0
    assert parse_retry_after("Sun, 01 Mar 2026 12:00:30 GMT", now=now) == 30.0
    assert parse_retry_after("Sun, 01 Mar 2026 11:00:00 GMT", now=now) == 0.0
    assert parse_retry_after(None) is None
    assert parse_retry_after("soon") is None
    assert parse_retry_after("-3") is None
