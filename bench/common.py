"""Shared benchmark plumbing: synthetic envelopes, process CPU time, result files."""

from __future__ import annotations

import os
import platform
import random
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import orjson

from producers.demo import USER_AGENTS, DemoTraffic

RESULTS = Path(__file__).resolve().parent / "results"


def envelopes(n: int, seed: int = 11, grouped: bool = False) -> list[tuple[bytes, bytes]]:
    """Raw-topic records (key, value) for n events, from demo traffic: one event per record,
    or (grouped) one record per visitor per request of 20 events."""
    rng = random.Random(seed)
    traffic = DemoTraffic(seed)
    now = int(time.time() * 1000)
    out: list[tuple[bytes, bytes]] = []
    events = 0
    for batch in traffic.batches(20):
        ip = f"{rng.choice((81, 88, 151, 178, 203))}.{rng.randint(0, 255)}." \
             f"{rng.randint(0, 255)}.{rng.randint(1, 254)}"
        head = {"v": 1, "received_at": now, "ip": ip, "ua": rng.choice(USER_AGENTS)}
        groups: dict[bytes, list[dict[str, Any]]] = {}
        for ev in batch:
            groups.setdefault(f"{ev['site_id']}|{ev['anonymous_id']}".encode(), []).append(ev)
        for key, evs in groups.items():
            if grouped:
                out.append((key, orjson.dumps({**head, "events": evs})))
            else:
                out.extend((key, orjson.dumps({**head, "event": ev})) for ev in evs)
        events += len(batch)
        if events >= n:
            return out
    return out


def loadgen_records(n: int, seed: int = 11) -> list[tuple[bytes, bytes]]:
    """Raw-topic records (key, value) for about n events of `clickstream loadgen` traffic
    (varied user agents, countries, click ids, campaigns, bots, malformed events), one
    record per visitor per request, as the collector writes them."""
    from producers.collector.records import RecordMaker
    from producers.loadgen.model import JourneyMaker

    maker = JourneyMaker(seed)
    now = int(time.time() * 1000)
    out: list[tuple[bytes, bytes]] = []
    events = index = 0
    while events < n:
        journey = maker.make(index, now)
        index += 1
        v = journey.visitor
        for request in journey.requests:
            records = RecordMaker("raw", "invalid", now, v.ip, v.ua, False).raws(request)
            out.extend((r.key, r.value) for r in records)
            events += len(request)
    return out


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


def favour(pids: Iterable[int]) -> bool:
    """Let these processes take the CPU first on a machine shared with other work: the top
    priority for their scheduler autogroups (every stack service runs in a session of its
    own, and Linux shares CPU fairly between sessions' autogroups whatever the processes'
    nice values). Needs root and autogroups; False when either is missing, and the figures
    are then taken as the machine gives them. No effect on an otherwise idle machine."""
    done = True
    for pid in pids:
        try:
            Path(f"/proc/{pid}/autogroup").write_text("-20")
        except OSError:
            done = False
    return done


def machine() -> dict[str, Any]:
    return {"cpus": os.cpu_count(), "python": platform.python_version(),
            "machine": platform.machine(), "kernel": platform.release()}


def write_result(name: str, result: dict[str, Any]) -> Path:
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{name}.json"
    doc = {"benchmark": name, "machine": machine(),
           "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), **result}
    path.write_bytes(orjson.dumps(doc, option=orjson.OPT_INDENT_2))
    return path
