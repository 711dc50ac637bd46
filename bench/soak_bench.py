"""Soak: the embedded stack under `clickstream loadgen` at a fixed rate for --minutes; the RSS
of every process (broker, sink, worker, collector, load generator) sampled each minute.
Growth above 10% after the warm-up is flagged as a finding.

    python -m bench.soak_bench [--minutes 30] [--rate 1000] [--warmup-minutes 2]

The services get the caller's CLICKSTREAM_* settings, e.g. CLICKSTREAM_WORKER_STORE=rocksdb://
(the production store: visitor state on disk instead of in the worker's memory).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import favour, write_result
from bench.e2e_bench import metric, pids, start_stack, stored, warm_up

GROWTH_LIMIT = 0.10


def rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return round(int(line.split()[1]) / 1024, 1)
    except (FileNotFoundError, ProcessLookupError):
        return None
    return None


def growth(samples: list[dict[str, Any]], name: str, warmup: int) -> float | None:
    values = [s["rss_mb"].get(name) for s in samples[warmup:]]
    values = [v for v in values if v]
    if len(values) < 2:
        return None
    return round((values[-1] - values[0]) / values[0], 3)


def achieved_rate(samples: list[dict[str, Any]]) -> int | None:
    """Accepted events/s over the samples taken while the load generator ran."""
    running = [s for s in samples if s["minute"] and s["rss_mb"].get("loadgen")]
    return round(running[-1]["accepted"] / (running[-1]["minute"] * 60)) if running else None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--minutes", type=float, default=30.0)
    ap.add_argument("--rate", type=float, default=1000.0, help="events/s (HTTP)")
    ap.add_argument("--warmup-minutes", type=int, default=None,
                    help="samples before this are warm-up (default: 2, or 1 under 10 min)")
    args = ap.parse_args()
    warmup = args.warmup_minutes if args.warmup_minutes is not None else (
        1 if args.minutes < 10 else 2)
    work = Path(tempfile.mkdtemp(prefix="bench-soak-"))
    stack = start_stack(work / "home")
    favoured = favour([*pids(stack).values(), os.getpid()])  # and the loadgen it starts
    samples: list[dict[str, Any]] = []
    try:
        warm_up(stack, work)
        env = {k: v for k, v in os.environ.items() if not k.startswith("CLICKSTREAM_")}
        env["CLICKSTREAM_HOME"] = str(stack.home)
        gen = subprocess.Popen(
            [sys.executable, "-m", "clickstream", "loadgen", "--quiet", "--url",
             stack.collector_url, "--rate", str(args.rate), "--duration",
             str(args.minutes * 60), "--seed", "21"],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        procs = {**pids(stack), "loadgen": gen.pid}
        base = stored(stack)
        collector = stack.services["collector"].url
        accepted0 = metric(collector, "clickstream_collector_events_accepted_total")
        start = time.monotonic()
        minute = 0
        while gen.poll() is None:
            time.sleep(max(0.0, start + minute * 60 - time.monotonic()))
            sample = {"minute": minute,
                      "rss_mb": {n: rss_mb(p) for n, p in procs.items()},
                      "stored": stored(stack) - base,
                      "accepted": int(metric(collector,
                                             "clickstream_collector_events_accepted_total")
                                      - accepted0)}
            sample["lag"] = sample["accepted"] - sample["stored"]
            samples.append(sample)
            print(f"  minute {minute:>3}: accepted {sample['accepted']:>10,}  stored "
                  f"{sample['stored']:>10,}  lag {sample['lag']:>8,}  RSS MB "
                  f"{sample['rss_mb']}", flush=True)
            minute += 1
        alive = {n: s.alive() for n, s in stack.services.items()}
    finally:
        stack.stop()
    growths = {n: growth(samples, n, warmup) for n in samples[0]["rss_mb"]} if samples else {}
    flagged = {n: g for n, g in growths.items() if g is not None and g > GROWTH_LIMIT}
    result = {"minutes": args.minutes, "rate": args.rate, "warmup_minutes": warmup,
              "worker_store": os.environ.get("CLICKSTREAM_WORKER_STORE", "memory://"),
              "samples": samples, "rss_growth_after_warmup": growths,
              "flagged_over_10_percent": flagged, "services_alive_at_end": alive,
              "achieved_rate": achieved_rate(samples), "favoured": favoured}
    for name, g in growths.items():
        mark = "  <-- FLAGGED (> 10% after warm-up)" if name in flagged else ""
        print(f"{name:10s} RSS growth after warm-up: "
              f"{'n/a' if g is None else f'{g:+.1%}'}{mark}")
    print(f"wrote {write_result('soak', result)}")


if __name__ == "__main__":
    main()
