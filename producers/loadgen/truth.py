"""Ground truth on disk: what the load generator sent, so that tests and benchmarks check
results, not only speed.

Directory layout (JSON Lines, one object per line):
  visitors.jsonl     one per journey: visitor, site, country, ip, ua, device type, bot
  sessions.jsonl     one per session: start/end, arrival, expected source/medium/channel,
                     pageviews, events, conversions, revenue, engaged
  conversions.jsonl  one per conversion: revenue and the channel path that led to it
  events.jsonl       one per event sent: event_id, visitor, session (-1: malformed), type,
                     client ts, valid, sent_at (wall ms of the request), status
  summary.json       totals and run figures, written at the end
"""

from __future__ import annotations

from pathlib import Path
from typing import IO, Any

import orjson

from producers.loadgen.model import Journey

FILES = ("visitors", "sessions", "conversions", "events")


class TruthWriter:
    """Appends ground truth as journeys are sent; `None` directory: keep nothing."""

    def __init__(self, directory: Path | None) -> None:
        self.directory = directory
        self._files: dict[str, IO[bytes]] = {}
        if directory is not None:
            directory.mkdir(parents=True, exist_ok=True)
            self._files = {name: open(directory / f"{name}.jsonl", "wb")  # noqa: SIM115
                           for name in FILES}

    def _write(self, name: str, rows: list[dict[str, Any]]) -> None:
        if self._files:
            self._files[name].write(b"".join(orjson.dumps(r) + b"\n" for r in rows))

    def journey(self, journey: Journey) -> None:
        self._write("visitors", [journey.visitor.truth()])
        self._write("sessions", journey.sessions)
        self._write("conversions", journey.conversions)

    def request(self, journey: Journey, events: list[dict[str, Any]], sent_at: int,
                status: int | str) -> None:
        if not self._files:
            return
        meta = journey.event_meta
        visitor = journey.visitor.visitor_id
        self._write("events", [
            {"event_id": ev["event_id"], "visitor": visitor, "site": ev.get("site_id"),
             "session": meta[ev["event_id"]][0], "type": ev.get("type"), "ts": ev.get("ts"),
             "valid": meta[ev["event_id"]][1], "sent_at": sent_at, "status": status}
            for ev in events])

    def close(self, summary: dict[str, Any]) -> None:
        for f in self._files.values():
            f.close()
        self._files = {}
        if self.directory is not None:
            (self.directory / "summary.json").write_bytes(
                orjson.dumps(summary, option=orjson.OPT_INDENT_2))


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    with open(path, "rb") as f:
        return [orjson.loads(line) for line in f if line.strip()]


def load(directory: Path) -> dict[str, Any]:
    """Every ground-truth file of a run: {"visitors": [...], ..., "summary": {...}}."""
    out: dict[str, Any] = {name: read_jsonl(directory / f"{name}.jsonl") for name in FILES}
    summary = directory / "summary.json"
    out["summary"] = orjson.loads(summary.read_bytes()) if summary.exists() else {}
    return out
