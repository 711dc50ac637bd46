"""The `session` step: drop replayed duplicates, cut sessions, and keep per-visitor state.

State lives in the visitor table, one JSON object per visitor:
  {"first", "last", "n", "sessions": [...recent sessions...], "seen": {id-hash: received}}
It is read once per visitor per batch (cached for the batch) and written once per visitor
per batch by `commit()`, which the worker calls only after the batch's outputs are
acknowledged by Kafka. So after a crash either the outputs are re-emitted (harmless:
ClickHouse replaces rows by key) or they are recognised as duplicates because they were
already delivered; never lost.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from schemas.timefmt import ms_to_text
from streams.attribution.stream import Attributor
from streams.pipeline import Ctx, Reject
from streams.sessions import Hit, SessionRules, assign, is_engaged
from streams.state import VisitorStateTable

SEEN_CAP = 512


class Sessionizer:
    def __init__(self, table: VisitorStateTable, rules: SessionRules,
                 dedup_window_ms: int = 60 * 60_000,
                 attributor: Attributor | None = None,
                 site_rules: Mapping[str, SessionRules] | None = None) -> None:
        self.table = table
        self.attributor = attributor or Attributor()
        self.rules = rules
        self.site_rules = site_rules or {}  # per-site overrides (streams/site_options.py)
        self.dedup_window_ms = dedup_window_ms
        self._batch: dict[bytes, tuple[int, dict[str, Any]]] = {}
        self.identity: list[dict[str, Any]] = []  # records for the user-keyed agent
        self._dirty: dict[str, tuple[str, str, dict[str, Any]]] = {}
        #: per partition, the newest receive time seen (streams/sweep.py expires by it)
        self.watermarks: dict[int, int] = {}

    def in_batch(self, key: bytes) -> bool:
        """The current batch holds this visitor's state (and will write it)."""
        return key in self._batch

    def begin_batch(self) -> None:
        self._batch.clear()
        self._dirty.clear()
        self.attributor.begin_batch()
        self.identity: list[dict[str, Any]] = []  # records for the user-keyed agent

    def _state(self, key: bytes, partition: int) -> dict[str, Any]:
        entry = self._batch.get(key)
        if entry is None:
            state = self.table.get(key, partition) or {"first": 0, "last": 0, "n": 0}
            entry = (partition, state)
            self._batch[key] = entry
        return entry[1]

    def __call__(self, ctx: Ctx) -> None:
        row = ctx.row
        visitor_key = f"{row['site_id']}|{row['visitor_id']}"
        state = self._state(visitor_key.encode(), ctx.partition)
        received = ctx.envelope["received_at"]
        if received > self.watermarks.get(ctx.partition, 0):
            self.watermarks[ctx.partition] = received
        self._dedup(state, row["event_id"], received)
        ts = row["_ts_ms"]
        state["n"] += 1
        state["first"] = min(state["first"] or ts, ts)
        state["last"] = max(state["last"], ts)
        if row["is_bot"]:  # bots are stored, but they do not make sessions
            row["session_id"], row["session_seq"] = "", 0
            return
        sessions = state.setdefault("sessions", [])
        sess, seq = assign(sessions, visitor_key, _hit(row, ts),
                           self.site_rules.get(row["site_id"], self.rules))
        row["session_id"], row["session_seq"] = sess["id"], seq
        self._dirty[sess["id"]] = (row["site_id"], row["visitor_id"], sess)
        attributor = self.attributor
        if row["user_id"] and state.get("user") != row["user_id"]:
            state["user"] = row["user_id"]  # linked: hand the history to the user's
            self.identity.append(_link(row, state.get("tp", [])))
        if sess["n"] == 1:  # a session started (it is a touchpoint)
            tp = attributor.session_touchpoint(sess)
            attributor.touch(state, [tp], row["site_id"])
            if state.get("user"):
                self.identity.append(_link(row, [tp], state["user"]))
        if attributor.is_conversion(row):
            if state.get("user"):
                self.identity.append({"kind": "conversion", "site_id": row["site_id"],
                                      "user": state["user"], "ts": ts, "row": _slim(row)})
            else:
                attributor.convert(state, row, ts)

    def _dedup(self, state: dict[str, Any], event_id: str, received: int) -> None:
        seen: dict[str, int] = state.setdefault("seen", {})
        h = event_id.replace("-", "")[:16]
        floor = received - self.dedup_window_ms
        # within the window only: whether an older entry is still there depends on when
        # it was pruned (here, or by the state sweep), and results must not
        first = seen.get(h)
        if first is not None:
            if first >= floor:
                raise Reject("duplicate: event_id seen before")
            del seen[h]  # (re-added last: the dict stays oldest first)
        seen[h] = received
        # Pruned oldest first, so the first entry is (nearly always) the oldest: checking it
        # alone is enough to bound the dict; an entry received out of order is kept a
        # little longer, never dropped early.
        if len(seen) > SEEN_CAP or next(iter(seen.values())) < floor:
            kept = sorted((t, k) for k, t in seen.items() if t >= floor)
            state["seen"] = {k: t for t, k in kept[-SEEN_CAP:]}

    def session_rows(self) -> list[dict[str, Any]]:
        """One row per session touched in this batch (replaces the previous version)."""
        rows = []
        for sid, (site, visitor, s) in self._dirty.items():
            engaged = is_engaged(s)
            rows.append({
                "session_id": sid, "site_id": site, "visitor_id": visitor,
                "user_id": s["user"], "first_seen": ms_to_text(s["first_seen"]),
                "started_at": ms_to_text(s["start"]), "ended_at": ms_to_text(s["last"]),
                "duration_ms": s["last"] - s["start"],
                "pageviews": s["pv"], "events": s["n"], "conversions": s["conv"],
                "revenue": s["rev"], "entry_path": s["entry"], "exit_path": s["exit"],
                "source": s["source"], "medium": s["medium"], "campaign": s["campaign"],
                "channel": s["channel"], "referrer_host": s["ref"], "device_type": s["device"],
                "browser": s["browser"], "os": s["os"], "country": s["country"],
                "is_engaged": int(engaged), "is_bounce": int(not engaged), "version": s["n"],
            })
        return rows

    async def commit(self) -> int:
        """Write every visitor state touched in this batch (after outputs are acked)."""
        return await self.table.put_many(
            (key, partition, state) for key, (partition, state) in self._batch.items())


_SLIM = ("event_id", "site_id", "visitor_id", "user_id", "type", "name", "path", "revenue",
         "currency", "props", "session_id")


def _slim(row: dict[str, Any]) -> dict[str, Any]:
    """What attribution needs of a conversion event."""
    return {k: row[k] for k in _SLIM}


def _link(row: dict[str, Any], tps: list[Any], user: str = "") -> dict[str, Any]:
    return {"kind": "touch", "site_id": row["site_id"], "user": user or row["user_id"],
            "visitor_id": row["visitor_id"], "tp": tps}


def _hit(row: dict[str, Any], ts: int) -> Hit:
    # positional: a NamedTuple built from keywords costs twice as much
    source = row["source"]
    key = "" if source in ("(direct)", "") else (
        f"{source}|{row['medium']}|{row['utm_campaign']}")
    return Hit(row["event_id"], ts, row["type"], row["path"], row["revenue"], key, source,
               row["medium"], row["utm_campaign"], row["channel"], row["referrer_host"],
               row["device_type"], row["browser"], row["os"], row["country"],
               row["user_id"], row["utm_term"], row["utm_content"], row["click_id_type"])
