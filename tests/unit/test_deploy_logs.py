"""CLICKSTREAM_LOG_JSON: one JSON object per line, with the service name (for log shippers)."""

from __future__ import annotations

import logging

import orjson

from clickstream.logs import JsonFormatter


def test_json_log_line() -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        import sys

        record = logging.LogRecord("sinks.writer", logging.ERROR, __file__, 1,
                                   "insert failed for %s", ("events",), sys.exc_info())
    doc = orjson.loads(JsonFormatter("sink").format(record))
    assert doc["service"] == "sink" and doc["level"] == "error"
    assert doc["msg"] == "insert failed for events" and doc["logger"] == "sinks.writer"
    assert doc["ts"].endswith("Z") and "ValueError: boom" in doc["exc"]
