"""Bounce trackers in the changelog as a log: one record ("segment") per source partition
and batch, holding only the trackers that batch changed -- the tracker, or a marker when
its session engaged -- instead of one record per session (every changelog record costs
the worker ~10 us in the Kafka client, and a busy minute starts hundreds of sessions per
batch).

Restoring applies the segments in order: the newest entry of a session wins. A segment is
deleted (a tombstone) once it holds no newest entry any more; a marker stays while it
may hide an older entry of its session, i.e. until the session's window is evicted.
Segments are written after the window records of their batch and tombstones after the
segment that replaces them, so whatever prefix of a commit Kafka keeps, a stored entry
never gets ahead of its window or behind a deleted segment.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from streams.traffic.bounces import Tracker

SEGMENT = "~t|"


def segment_key(p: int, seq: int) -> bytes:
    return f"{p}|{SEGMENT}{seq:012d}".encode()


class TrackerLog:
    """Per partition: which stored segment holds each session's newest entry, and how many
    newest entries each segment still holds."""

    def __init__(self) -> None:
        self.where: dict[str, int] = {}   # session id -> segment of its newest entry
        self.live: dict[int, int] = {}    # segment -> newest entries it holds
        self.engaged: dict[str, tuple[str, int]] = {}  # stored markers: sid -> window
        self.next_seq = 0

    def _move(self, sid: str, seq: int | None, dead: list[int]) -> None:
        """sid's newest entry is now in `seq` (None: no entry needed any more)."""
        old = self.where.pop(sid, None)
        if old is not None:
            self.live[old] -= 1
            if not self.live[old]:
                del self.live[old]
                dead.append(old)
        if seq is not None:
            self.where[sid] = seq
            self.live[seq] = self.live.get(seq, 0) + 1

    def apply(self, seq: int, entries: dict[str, list[Any]],
              sessions: dict[str, Tracker]) -> list[int]:
        """Restore one stored segment (in segment order) into `sessions`; returns the
        segments it makes unnecessary (a crash came before their tombstones)."""
        self.next_seq = max(self.next_seq, seq + 1)
        unused: list[int] = []
        for sid, entry in entries.items():
            if len(entry) == 2:  # marker: [site, window start]
                sessions.pop(sid, None)
                self.engaged[sid] = (entry[0], entry[1])
            else:
                sessions[sid] = Tracker.load(entry)
                self.engaged.pop(sid, None)
            self._move(sid, seq, unused)
        return unused

    def write(self, changes: Iterable[tuple[str, Tracker, bool]],
              ) -> tuple[int, dict[str, list[Any]], list[int]]:
        """(session id, tracker, engaged) changed in a batch -> the new segment's number
        and value (empty: nothing to store) and the segments it makes unnecessary."""
        seq = self.next_seq
        entries: dict[str, list[Any]] = {}
        dead: list[int] = []
        for sid, tracker, engaged in changes:
            if engaged:
                if sid not in self.where:
                    continue  # never stored: nothing to hide
                entries[sid] = [tracker.site, tracker.start]
                self.engaged[sid] = (tracker.site, tracker.start)
            else:
                entries[sid] = tracker.dump()
                self.engaged.pop(sid, None)
            self._move(sid, seq, dead)
        if entries:
            self.next_seq += 1
        return seq, entries, dead

    def forget(self, sids: Iterable[str]) -> list[int]:
        """Sessions whose window is gone: no entry needed; returns segments to delete."""
        dead: list[int] = []
        for sid in sids:
            self.engaged.pop(sid, None)
            self._move(sid, None, dead)
        return dead
