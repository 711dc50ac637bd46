"""End to end on the embedded defaults (Tansu broker, chDB, one worker, one collector, the
same stack `clickstream up` runs), every part and the load generator on this machine.

1. latency: `clickstream loadgen` at a fixed rate over HTTP; every event whose id starts with
   "0" (1 in 16) is looked for in ClickHouse every 0.2 s; latency = first seen - the
   ground-truth send time of its request (targets p50 <= 1.5 s, p99 <= 5 s at 5,000/s).
2. throughput: loadgen as fast as it goes, over HTTP (the whole path) and straight into
   Kafka (broker -> worker -> sink); events/s stored in ClickHouse over the second half of the
   run, and whether the lag (accepted - stored) stayed bounded (target >= 10,000/s).

    python -m bench.e2e_bench [--rates 1000,5000] [--seconds 30] [--skip-throughput]
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from bench.common import cpu_seconds, favour, write_result
from clickstream.embedded_broker import free_port
from clickstream.settings import CollectorSettings
from clickstream.stack import Stack
from producers.loadgen.truth import read_jsonl
from sinks.store import RemoteStore

POLL_SECONDS = 0.2


def start_stack(home: Path, **env: str) -> Stack:
    """The embedded stack as `clickstream up` starts it; the collector trusts this host as a
    proxy, so each simulated visitor's X-Forwarded-For address is its client IP (countries,
    per-IP rate limits)."""
    settings = CollectorSettings(home=home, kafka_bootstrap=None, log_level="WARNING")
    stack = Stack(settings, collector_port=free_port(), extra_env={
        "CLICKSTREAM_COLLECTOR_TRUSTED_PROXIES": "127.0.0.1/32", **env})
    stack.start()
    return stack


def pids(stack: Stack) -> dict[str, int]:
    out = {n: s.process.pid for n, s in stack.services.items() if s.process}
    if stack.broker and stack.broker.process:
        out["broker"] = stack.broker.process.pid
    return out


def loadgen(stack: Stack, truth: Path, *args: str) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLICKSTREAM_")}
    env["CLICKSTREAM_HOME"] = str(stack.home)
    return subprocess.Popen([sys.executable, "-m", "clickstream", "loadgen", "--quiet",
                             "--truth", str(truth), *args], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def metric(url: str, name: str, label_regex: str = "") -> float:
    try:
        text = urllib.request.urlopen(url + "/metrics", timeout=5).read().decode()
    except OSError:
        return 0.0
    pattern = rf"^{name}{label_regex} ([0-9.e+-]+)$"
    return sum(float(m.group(1)) for m in re.finditer(pattern, text, re.M))


def stored(stack: Stack) -> int:
    """Rows the sink has inserted into the events table (its metric)."""
    return int(metric(stack.services["sink"].url, "clickstream_sink_rows_written_total",
                      r'\{table="(?:[^"]*\.)?events"\}'))


def warm_up(stack: Stack, work: Path) -> None:
    """A few seconds of traffic first: group joins and first inserts are not latency."""
    base = stored(stack)
    proc = loadgen(stack, work / "warmup", "--url", stack.collector_url, "--rate", "500",
                   "--duration", "4", "--seed", "99", "--malformed-share", "0")
    proc.wait()
    n = len(read_jsonl(work / "warmup" / "events.jsonl"))
    deadline = time.monotonic() + 60
    while stored(stack) - base < n and time.monotonic() < deadline:
        time.sleep(0.5)


def cpu_of(p: dict[str, int]) -> dict[str, float]:
    out = {}
    for name, pid in p.items():
        try:
            out[name] = cpu_seconds(pid)
        except (FileNotFoundError, ProcessLookupError):
            out[name] = 0.0
    return out


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, round(q / 100 * (len(values) - 1)))]


def drain(stack: Stack, quiet_seconds: float = 3.0, limit: float = 180.0) -> None:
    """Wait until the sink has stored nothing new for a few seconds: phases do not share
    a backlog."""
    last, since, start = stored(stack), time.monotonic(), time.monotonic()
    while time.monotonic() - since < quiet_seconds and time.monotonic() - start < limit:
        time.sleep(0.5)
        now = stored(stack)
        if now != last:
            last, since = now, time.monotonic()


def latency_phase(stack: Stack, work: Path, rate: float, seconds: float,
                  seed: int, target: str = "http") -> dict[str, Any]:
    store = RemoteStore(stack.services["sink"].url, timeout=10)
    db = stack.settings.database
    truth = work / f"latency-{seed}"
    since = int(time.time() * 1000) - 1000
    base = stored(stack)
    where = ["--bootstrap", stack.bootstrap] if target == "kafka" else [
        "--url", stack.collector_url]
    proc = loadgen(stack, truth, *where, *TARGETS[target], "--rate", str(rate),
                   "--duration", str(seconds), "--seed", str(seed))
    seen: dict[str, float] = {}
    deadline = None
    while True:
        rows = store.query_rows(
            f"SELECT toString(event_id) FROM {db}.events WHERE received_at >= "
            f"fromUnixTimestamp64Milli({since}) AND startsWith(toString(event_id), '0')")[1]
        now = time.time() * 1000
        for (eid,) in rows:
            seen.setdefault(eid, now)
        if proc.poll() is not None and deadline is None:
            deadline = time.monotonic() + 30
            summary = read_jsonl(truth / "events.jsonl")
            valid = sum(1 for e in summary if e["valid"])
        if deadline is not None and (stored(stack) - base >= valid
                                     or time.monotonic() > deadline):
            break
        time.sleep(POLL_SECONDS)
    events = read_jsonl(truth / "events.jsonl")
    samples = [e for e in events if e["valid"] and e["event_id"].startswith("0")]
    lat = [(seen[e["event_id"]] - e["sent_at"]) / 1000 for e in samples if e["event_id"] in seen]
    sent_seconds = (max(e["sent_at"] for e in events) - min(e["sent_at"] for e in events)) / 1000
    return {
        "target": target, "target_rate": rate, "seconds": seconds, "events_sent": len(events),
        "achieved_send_rate": round(len(events) / max(sent_seconds, 1e-9)),
        "requests": len({(e["visitor"], e["sent_at"]) for e in events}),
        "samples": len(samples), "samples_seen": len(lat),
        "p50_s": round(statistics.median(lat), 3) if lat else None,
        "p90_s": round(pct(lat, 90), 3) if lat else None,
        "p99_s": round(pct(lat, 99), 3) if lat else None,
        "max_s": round(max(lat), 3) if lat else None,
        "poll_interval_s": POLL_SECONDS,
        "loadgen_stderr": proc.stderr.read().decode()[-400:] if proc.stderr else "",
    }


TARGETS = {  # name -> loadgen arguments (besides the address)
    "http": [],  # the JS tracker's batching: events within 1 s share a request
    "http-batched": ["--batch-window-ms", "3600000"],  # up to 10 events of a visitor each
    "kafka": ["--target", "kafka"],  # raw records as the collector writes them
}


def throughput_phase(stack: Stack, work: Path, target: str, seconds: float,
                     seed: int, offered: float = 0.0, prepare: bool = False) -> dict[str, Any]:
    """Loadgen at `offered` events/s (0: as fast as it goes) for `seconds`. `prepare`: the
    loadgen makes all its journeys first (about offered x seconds events; not timed), so that
    during the phase it only sends: inventing realistic visitors costs it ~50 us of CPU per
    event, which on a 2-core machine would otherwise be taken from the pipeline."""
    truth = work / f"throughput-{target}"
    args = ["--bootstrap", stack.bootstrap] if target == "kafka" else [
        "--url", stack.collector_url]
    args += TARGETS[target]
    how = ["--prepare", "--events", str(int((offered or 15_000) * seconds))] if prepare \
        else ["--duration", str(seconds)]
    base = stored(stack)
    procs = pids(stack)
    proc = loadgen(stack, truth, *args, "--rate", str(offered), *how,
                   "--seed", str(seed), "--concurrency", "128")
    procs["loadgen"] = proc.pid
    events_file = truth / "events.jsonl"
    while prepare and proc.poll() is None and not (
            events_file.exists() and events_file.stat().st_size):
        time.sleep(0.05)  # still making journeys
    t0 = time.monotonic()
    cpu0 = cpu_of(procs)
    series: list[tuple[float, int, int]] = []  # (t, sent, stored)
    cpu1 = dict(cpu0)
    while proc.poll() is None:
        time.sleep(1.0)
        cpu1.update({k: v for k, v in cpu_of(procs).items() if v})  # loadgen: last sample
        sent = events_file.stat().st_size if events_file.exists() else 0
        series.append((time.monotonic() - t0, sent, stored(stack) - base))
    wall = time.monotonic() - t0
    events = read_jsonl(events_file)
    valid = sum(1 for e in events if e["valid"])
    bytes_per_event = max(1, series[-1][1]) / max(1, len(events)) if series else 1
    series = [(t, int(s / bytes_per_event), n) for t, s, n in series]
    drain_start = time.monotonic()
    while stored(stack) - base < valid and time.monotonic() - drain_start < 180:
        time.sleep(0.5)
    drained = time.monotonic() - drain_start
    half = [p for p in series if p[0] >= series[-1][0] / 2] if series else []
    rate = (half[-1][2] - half[0][2]) / (half[-1][0] - half[0][0]) if len(half) > 1 else 0.0
    lags = [s - n for _, s, n in series]
    mid = lags[len(lags) // 2] if lags else 0
    return {
        "target": target, "offered_rate": offered or "as fast as possible",
        "prepared": prepare, "seconds": round(wall, 1), "events_sent": len(events),
        "send_rate": round(len(events) / wall), "stored_rate_second_half": round(rate),
        "lag_mid": mid, "lag_end": lags[-1] if lags else 0,
        "lag_bounded": bool(lags) and lags[-1] <= max(mid * 1.25, rate * 2),
        "drain_seconds_after_stop": round(drained, 1),
        "all_stored": stored(stack) - base >= valid,
        "cpu_seconds": {k: round(cpu1[k] - cpu0.get(k, 0.0), 1) for k in cpu1},
        "series": [[round(t, 1), s, n] for t, s, n in series],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rates", default="1000,5000",
                    help="latency phases, events/s, comma separated (target: 5000)")
    ap.add_argument("--latency-targets", default="http,kafka",
                    help="where the latency phases send: http (through the collector; the "
                    "Python load generator tops out near 1,000 single-event requests/s "
                    "here), http-batched or kafka (raw records as a collector writes them)")
    ap.add_argument("--seconds", type=float, default=30.0, help="length of each phase")
    ap.add_argument("--skip-throughput", action="store_true")
    ap.add_argument("--skip-latency", action="store_true")
    ap.add_argument("--no-favour", action="store_true",
                    help="do not give the stack CPU priority over other work")
    ap.add_argument("--throughput-targets", default=",".join(TARGETS),
                    help=f"throughput phases, of {', '.join(TARGETS)}")
    ap.add_argument("--throughput-rate", type=float, default=0.0,
                    help="events/s the throughput phases offer (0: as fast as the loadgen "
                    "goes); with a rate, 'lag bounded' says the pipeline keeps up with it")
    ap.add_argument("--prepare", action="store_true",
                    help="throughput phases: the loadgen makes its journeys before the "
                    "phase starts (loadgen --prepare), so its CPU goes to sending")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-e2e-"))
    stack = start_stack(work / "home")
    # the stack, this process and the loadgens it starts (same session) get the CPU first
    favoured = not args.no_favour and favour([*pids(stack).values(), os.getpid()])
    try:
        warm_up(stack, work)
        lats = []
        # every phase its own seed: the same seed repeats event ids, which the worker
        # (rightly) drops as duplicates
        phases = [] if args.skip_latency else [
            (t, float(r)) for t in args.latency_targets.split(",") for r in args.rates.split(",")]
        for i, (target, rate) in enumerate(phases):
            print(f"latency at {rate:,.0f} events/s for {args.seconds:.0f} s ({target}) ...",
                  flush=True)
            lat = latency_phase(stack, work, rate, args.seconds, seed=11 + i, target=target)
            lats.append(lat)
            print(f"  sent {lat['events_sent']:,} at {lat['achieved_send_rate']:,}/s; event "
                  f"-> queryable p50 {lat['p50_s']} s, p99 {lat['p99_s']} s "
                  f"({lat['samples_seen']}/{lat['samples']} samples)", flush=True)
            drain(stack)
        runs = []
        if not args.skip_throughput:
            for i, target in enumerate(args.throughput_targets.split(",")):
                offered = (f"{args.throughput_rate:,.0f} events/s" if args.throughput_rate
                           else "as fast as the loadgen goes")
                print(f"throughput, {target}, {offered}"
                      f"{', journeys made first' if args.prepare else ''} ...", flush=True)
                r = throughput_phase(stack, work, target, args.seconds, seed=41 + i,
                                     offered=args.throughput_rate, prepare=args.prepare)
                drain(stack)
                runs.append(r)
                print(f"  sent {r['events_sent']:,} ({r['send_rate']:,}/s); stored "
                      f"{r['stored_rate_second_half']:,}/s in the second half; lag "
                      f"{'bounded' if r['lag_bounded'] else 'growing'} "
                      f"(mid {r['lag_mid']:,}, end {r['lag_end']:,}); drained in "
                      f"{r['drain_seconds_after_stop']} s; CPU s {r['cpu_seconds']}",
                      flush=True)
    finally:
        stack.stop()
    result = {"latency": lats, "throughput": runs, "favoured": favoured,
              "targets": {"sustained_events_per_second": 10_000, "p50_s": 1.5, "p99_s": 5.0,
                          "latency_rate": 5000}}
    print(f"wrote {write_result('e2e', result)}")


if __name__ == "__main__":
    main()
