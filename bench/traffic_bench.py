"""Event -> visible in the live endpoint (`GET /v1/stats/{site}/live`), on the embedded
stack `clickstream up` runs (Tansu, one worker, sink on chDB, collector), all on this machine.

Pageviews of one site are posted to the collector at a fixed rate (requests of 50 events);
the live endpoint is polled every 0.2 s and its pageview count over the last 30 minutes is
compared with what has been sent: a request's events are visible once the count reaches the
running total at the end of that request. Latency = first poll that sees it - the time the
request was sent (so it includes collector, Kafka, worker batch, sink flush, the ClickHouse
insert and the live query; resolution 0.2 s). Target: p99 <= 2 s at 5,000 events/s.
Also reported per rate: raw record -> its counter row in Kafka (the worker's part of the
latency, bench/traffic_phases.py), the live request's own time, each process's share of a
core, and the worker's CPU per event sent (the whole worker: steps, sessions, attribution,
traffic); and, before the stack starts, the traffic windows' own CPU per event
(bench/traffic_micro.py).

    python -m bench.traffic_bench [--rates 1000,2000,5000] [--seconds 15] [--no-micro]
                                  [--sink-flush S]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import aiohttp
import orjson

from bench import traffic_micro, traffic_phases
from bench.common import cpu_seconds, favour, write_result
from clickstream.embedded_broker import free_port
from clickstream.settings import CollectorSettings
from clickstream.stack import Stack

SITE = "bench.example"
PER_REQUEST = 50
BROWSER = ("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
           "Chrome/131.0 Safari/537.36")  # a library's own user agent would be a bot
POLL_SECONDS = 0.2
PATHS = [f"/p/{i}" for i in range(40)]
QUERIES = ["", "", "?utm_source=newsletter&utm_medium=email&utm_campaign=bench",
           "?utm_source=google&utm_medium=cpc&utm_campaign=brand"]


def batch(rng: random.Random, now_ms: int, visitors: int) -> bytes:
    events = [{"event_id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
               "type": "pageview", "site_id": SITE,
               "anonymous_id": f"v{rng.randrange(visitors)}",
               "ts": now_ms, "url": f"https://{SITE}{rng.choice(PATHS)}{rng.choice(QUERIES)}"}
              for _ in range(PER_REQUEST)]
    return orjson.dumps(events)


async def run_rate(stack: Stack, rate: float, seconds: float, seed: int,
                   visitors: int) -> dict[str, Any]:
    rng = random.Random(seed)
    live_url = f"{stack.services['sink'].url}/v1/stats/{SITE}/live"
    sent: list[tuple[float, int]] = []  # (send time, running total after the request)
    visible_at: list[tuple[float, int]] = []
    done = asyncio.Event()

    async with aiohttp.ClientSession() as http:
        answered: list[float] = []  # seconds per live request

        async def count() -> int:
            t = time.monotonic()
            async with http.get(live_url) as resp:
                doc = await resp.json(loads=orjson.loads)
            answered.append(time.monotonic() - t)
            return sum(m["pageviews"] for m in doc["pageviews_per_minute"])

        base = await count()

        async def poll() -> None:
            while not done.is_set() or (sent and (not visible_at or
                                                  visible_at[-1][1] - base < sent[-1][1])):
                t = time.monotonic()
                with contextlib.suppress(aiohttp.ClientError, ValueError):
                    n = await count()
                    visible_at.append((time.monotonic(), n))  # seen once the answer is back
                if done.is_set() and time.monotonic() - done_at[0] > 30:
                    return
                await asyncio.sleep(max(0.0, POLL_SECONDS - (time.monotonic() - t)))

        done_at = [0.0]
        poller = asyncio.create_task(poll())
        interval = PER_REQUEST / rate
        start = time.monotonic()
        total, rejected = 0, 0
        in_flight: set[asyncio.Task[Any]] = set()

        async def post(body: bytes) -> None:
            nonlocal rejected
            async with http.post(f"{stack.collector_url}/v1/events", data=body,
                                 headers={"Content-Type": "text/plain",
                                          "User-Agent": BROWSER}) as resp:
                if resp.status != 202:
                    rejected += PER_REQUEST

        i = 0
        while time.monotonic() - start < seconds:
            due = start + i * interval
            await asyncio.sleep(max(0.0, due - time.monotonic()))
            body = batch(rng, int(time.time() * 1000), visitors)
            total += PER_REQUEST
            sent.append((time.monotonic(), total))
            task = asyncio.create_task(post(body))
            in_flight.add(task)
            task.add_done_callback(in_flight.discard)
            i += 1
        elapsed = time.monotonic() - start
        if in_flight:
            await asyncio.gather(*in_flight)
        done_at[0] = time.monotonic()
        done.set()
        await poller

    latencies = []
    j = 0
    for t_sent, running in sent:
        while j < len(visible_at) and (visible_at[j][0] < t_sent
                                       or visible_at[j][1] - base < running):
            j += 1
        if j == len(visible_at):
            break
        latencies.append(visible_at[j][0] - t_sent)
    latencies.sort()
    seen = len(latencies) * PER_REQUEST

    def pct(q: float) -> float:
        return round(latencies[min(len(latencies) - 1, int(q * len(latencies)))], 3)

    answered.sort()
    live_ms = {"p50": round(answered[len(answered) // 2] * 1000, 1),
               "p99": round(answered[int(0.99 * (len(answered) - 1))] * 1000, 1)}
    return {"rate_target": rate, "rate_sent": round(total / elapsed), "events": total,
            "live_request_ms": live_ms,
            "rejected": rejected, "visible": seen,
            "latency_s": {"p50": pct(0.5), "p90": pct(0.9), "p99": pct(0.99),
                          "max": round(latencies[-1], 3), "mean":
                          round(statistics.fmean(latencies), 3)} if latencies else None}


def _processes(stack: Stack) -> dict[str, int]:
    pids = {k: s.process.pid for k, s in stack.services.items() if s.process}
    if stack.broker and stack.broker.process:
        pids["broker"] = stack.broker.process.pid
    return pids


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rates", default="1000,2000,5000")
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--visitors", type=int, default=5000,
                        help="visitor population the pageviews are drawn from")
    parser.add_argument("--traffic-flush", type=float, default=None,
                        help="CLICKSTREAM_SINK_TRAFFIC_FLUSH_SECONDS for the run")
    parser.add_argument("--no-favour", action="store_true",
                        help="do not give the stack CPU priority over other work")
    parser.add_argument("--no-micro", action="store_true",
                        help="skip the traffic windows' own CPU measurement")
    parser.add_argument("--sink-flush", type=float, default=None,
                        help="CLICKSTREAM_SINK_FLUSH_SECONDS for the run (default: its default)")
    args = parser.parse_args()
    micro = None if args.no_micro else traffic_micro.run(300_000)
    with tempfile.TemporaryDirectory(prefix="traffic-bench-") as tmp:
        settings = CollectorSettings(home=Path(tmp), kafka_bootstrap=None, log_level="WARNING")
        env = {"CLICKSTREAM_COLLECTOR_RATE_LIMIT_PER_SECOND": "0"}
        if args.sink_flush is not None:
            env["CLICKSTREAM_SINK_FLUSH_SECONDS"] = str(args.sink_flush)
        if args.traffic_flush is not None:
            env["CLICKSTREAM_SINK_TRAFFIC_FLUSH_SECONDS"] = str(args.traffic_flush)
        stack = Stack(settings, collector_port=free_port(), extra_env=env)
        stack.start()
        favoured = not args.no_favour and favour([*_processes(stack).values(), os.getpid()])
        try:
            runs = []
            # warm up: joins, first inserts
            asyncio.run(run_rate(stack, 500, 3, seed=0, visitors=args.visitors))
            for n, rate in enumerate(float(r) for r in args.rates.split(",")):
                pids = _processes(stack)
                cpu0 = {k: cpu_seconds(pid) for k, pid in pids.items()}
                t0, since_ms = time.monotonic(), int(time.time() * 1000)
                result = asyncio.run(run_rate(stack, rate, args.seconds, seed=n + 1,
                                             visitors=args.visitors))
                wall = time.monotonic() - t0
                result["raw_to_counter_rows_s"] = asyncio.run(traffic_phases.worker_latency(
                    stack.bootstrap, settings.topic_prefix, since_ms))
                used = {k: cpu_seconds(pid) - cpu0[k] for k, pid in pids.items()}
                result["cpu_share"] = {k: round(v / wall, 2) for k, v in used.items()}
                result["worker_cpu_us_per_event"] = round(
                    used["worker"] / result["events"] * 1e6, 1)
                runs.append(result)
                lat = result["latency_s"] or {}
                print(f"{rate:>7.0f}/s target, {result['rate_sent']}/s sent: event -> live "
                      f"p50 {lat.get('p50')} s, p99 {lat.get('p99')} s, max {lat.get('max')} s"
                      f" ({result['visible']:,} of {result['events']:,} seen; worker "
                      f"{result['worker_cpu_us_per_event']} us CPU/event; raw -> counter "
                      f"rows in Kafka {result['raw_to_counter_rows_s']}; live request "
                      f"{result['live_request_ms']} ms; core shares "
                      f"{result['cpu_share']})", flush=True)
        finally:
            stack.stop()
    path = write_result("traffic", {
        "what": "event -> visible in GET /v1/stats/{site}/live, embedded stack on one machine",
        "target": "p99 <= 2 s at 5,000 events/s", "seconds_per_rate": args.seconds,
        "sink_flush_seconds": args.sink_flush or "default",
        "traffic_flush_seconds": args.traffic_flush or "default",
        "poll_seconds": POLL_SECONDS, "visitors": args.visitors, "favoured": favoured,
        "events_per_request": PER_REQUEST, "runs": runs,
        "traffic_windows_cpu": micro})
    print(f"written {path}")


if __name__ == "__main__":
    main()
