"""Collector throughput and latency against the real embedded broker.

    .venv/bin/python bench/collector_bench.py [--duration 10] [--connections 64] [--quick]

Starts Tansu, creates topics, starts `python -m producers.collector` pinned to core 0
(`taskset -c 0`), and drives it from core 1 (the broker shares core 1 with the load
generator, which runs at nice 10 so that the broker gets the CPU it needs):
  * saturation: `wrk` (Debian package; `apt-get install -y wrk`) closed loop with 64
    connections, or this script's own aiohttp load generator when wrk is missing;
    requests/s, accepted events/s and latency percentiles at saturation;
  * below saturation: wrk paced (its `delay()` hook, 16 connections) at 50% and 80% of the
    measured maximum: the latency a site sees when the collector is not overloaded.
Also reported: the collector's CPU time, and requests / events per collector CPU-second
(the steadier per-core figure on a shared machine).
Scenarios: single-event requests and batches of 20. Requests carry X-Forwarded-For from a
pool of 508 documentation addresses (the collector trusts 127.0.0.1 as a proxy), so the rate
limiter and the client-IP code run as in production. At the end every accepted event must be
acknowledged by Kafka (records_delivered_total). Writes bench/results/collector.json.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

RESULTS = ROOT / "bench" / "results" / "collector.json"
ACCEPTED = "clickstream_collector_events_accepted_total"
UA = ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
      "Chrome/131.0.0.0 Safari/537.36")
XFF = [f"198.51.100.{i}" for i in range(254)] + [f"203.0.113.{i}" for i in range(254)]


def make_bodies(per_request: int, count: int = 400) -> list[bytes]:
    """Realistic pageviews (~300 bytes each), distinct ids, three sites, 1,000 visitors."""
    import orjson

    now = int(time.time() * 1000)
    bodies = []
    for i in range(count):
        events = [{
            "event_id": str(uuid.uuid4()), "type": "pageview", "site_id": f"site-{(i + j) % 3}",
            "anonymous_id": f"visitor-{(i * 7 + j) % 1000}", "ts": now,
            "url": f"https://shop.example/products/{j}?utm_source=newsletter&utm_medium=email",
            "referrer": "https://www.google.com/", "title": "Product page",
            "screen": "1440x900", "lang": "en-GB", "props": {"plan": "pro", "n": j},
        } for j in range(per_request)]
        bodies.append(orjson.dumps({"events": events}))
    return bodies


# --- load generators (run in a child process pinned to core 1) ----------------------------

async def closed_loop(url: str, bodies: list[bytes], connections: int,
                      duration: float) -> dict[str, Any]:
    import aiohttp

    lat: list[float] = []
    statuses: dict[int, int] = {}
    deadline = time.monotonic() + duration

    async def worker(k: int, http: aiohttp.ClientSession) -> None:
        n = k
        while time.monotonic() < deadline:
            n += connections
            t0 = time.perf_counter()
            async with http.post(url, data=bodies[n % len(bodies)], headers={
                    "Content-Type": "text/plain", "User-Agent": UA,
                    "X-Forwarded-For": XFF[n % len(XFF)]}) as resp:
                await resp.read()
            lat.append(time.perf_counter() - t0)
            statuses[resp.status] = statuses.get(resp.status, 0) + 1

    conn = aiohttp.TCPConnector(limit=connections)
    async with aiohttp.ClientSession(connector=conn) as http:
        t0 = time.monotonic()
        await asyncio.gather(*(worker(k, http) for k in range(connections)))
        elapsed = time.monotonic() - t0
    return {"requests": len(lat), "seconds": elapsed, "statuses": statuses,
            "latency_ms": percentiles(lat)}


async def open_loop(url: str, bodies: list[bytes], rate: float,
                    duration: float) -> dict[str, Any]:
    """Requests started on a fixed schedule; latency measured from the scheduled start
    (no coordinated omission: a stall shows up in the percentiles)."""
    import aiohttp

    lat: list[float] = []
    statuses: dict[int, int] = {}
    total = int(rate * duration)
    conn = aiohttp.TCPConnector(limit=512)
    async with aiohttp.ClientSession(connector=conn) as http:
        async def one(n: int, due: float) -> None:
            async with http.post(url, data=bodies[n % len(bodies)], headers={
                    "Content-Type": "text/plain", "User-Agent": UA,
                    "X-Forwarded-For": XFF[n % len(XFF)]}) as resp:
                await resp.read()
            lat.append(time.perf_counter() - due)
            statuses[resp.status] = statuses.get(resp.status, 0) + 1

        start = time.perf_counter() + 0.05
        tasks = []
        for n in range(total):
            due = start + n / rate
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(n, due)))
        await asyncio.gather(*tasks)
        elapsed = time.perf_counter() - start
    return {"requests": len(lat), "seconds": elapsed, "target_rate": rate, "statuses": statuses,
            "latency_ms": percentiles(lat)}


def percentiles(samples: list[float]) -> dict[str, float]:
    if not samples:
        return {}
    s = sorted(samples)

    def at(q: float) -> float:
        return round(s[min(len(s) - 1, int(q * len(s)))] * 1000, 2)

    return {"p50": at(0.50), "p90": at(0.90), "p99": at(0.99), "p999": at(0.999),
            "max": round(s[-1] * 1000, 2)}


def load_main(args: argparse.Namespace) -> None:
    bodies = make_bodies(args.per_request)
    if args.rate:
        result = asyncio.run(open_loop(args.url, bodies, args.rate, args.duration))
    else:
        result = asyncio.run(closed_loop(args.url, bodies, args.connections, args.duration))
    print(json.dumps(result))


# --- wrk -------------------------------------------------------------------------------------

def wrk_script(per_request: int, path: Path, delay_ms: float = 0) -> None:
    """Lua for wrk: rotating bodies and X-Forwarded-For; `delay_ms` > 0 paces each
    connection (wrk's delay() hook), for runs below saturation."""
    bodies = make_bodies(per_request, count=200)
    lines = ["local bodies = {"]
    lines += [f"[==[{b.decode()}]==]," for b in bodies]
    lines.append("}")
    lines.append("local xff = {" + ",".join(f'"{x}"' for x in XFF) + "}")
    lines.append(f'local ua = "{UA}"')
    lines.append("""
local n = 0
request = function()
  n = n + 1
  return wrk.format("POST", "/v1/events", {["Content-Type"] = "text/plain",
    ["User-Agent"] = ua, ["X-Forwarded-For"] = xff[n % #xff + 1]}, bodies[n % #bodies + 1])
end
""")
    if delay_ms > 0:
        # jittered pacing (0.5-1.5 x) so that connections do not march in lockstep
        lines.append(f"delay = function() return {delay_ms} * (0.5 + math.random()) end")
    path.write_text("\n".join(lines))


_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


def _ms(text: str) -> float:
    num, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text).groups()  # type: ignore[union-attr]
    return round(float(num) * _UNITS[unit], 3)


def run_wrk(url: str, per_request: int, connections: int, duration: float, tmp: Path,
            rate: float = 0) -> dict[str, Any]:
    """Closed loop (rate 0) or paced to about `rate` requests/s in total."""
    script = tmp / f"wrk_{per_request}_{int(rate)}.lua"
    wrk_script(per_request, script, delay_ms=connections * 1000 / rate if rate else 0)
    out = subprocess.run(
        ["taskset", "-c", "1", "nice", "-n", "10", "wrk", "-t1", f"-c{connections}",
         f"-d{int(duration)}s", "--latency", "-s", str(script), url + "/v1/events"],
        capture_output=True, text=True, check=True).stdout
    total = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    lat = {f"p{m.group(1)}": _ms(m.group(2))
           for m in re.finditer(r"^\s+(50|75|90|99)%\s+(\S+)$", out, re.M)}
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: (.*)", out)
    res: dict[str, Any] = {
        "tool": "wrk", "connections": connections, "requests_total": total,
        "requests_per_s": round(rps), "events_per_s": round(rps * per_request),
        "latency_ms": lat, "non_2xx": int(non2xx.group(1)) if non2xx else 0}
    if rate:
        res["target_rate"] = rate
    if errors:
        res["socket_errors"] = errors.group(1)
    return res


def run_python_load(url: str, per_request: int, duration: float, *, connections: int = 64,
                    rate: float = 0) -> dict[str, Any]:
    cmd = ["taskset", "-c", "1", sys.executable, __file__, "--load", "--url", url + "/v1/events",
           "--per-request", str(per_request), "--duration", str(duration),
           "--connections", str(connections), "--rate", str(rate)]
    res = json.loads(subprocess.run(cmd, capture_output=True, text=True, check=True).stdout)
    res["tool"] = "python-aiohttp"
    res["requests_total"] = res.pop("requests")
    res["requests_per_s"] = round(res["requests_total"] / res["seconds"])
    res["events_per_s"] = round(res["requests_total"] * per_request / res["seconds"])
    return res


# --- orchestration ---------------------------------------------------------------------------

def metric(base: str, name: str) -> float:
    with urllib.request.urlopen(base + "/metrics", timeout=5) as resp:
        text = resp.read().decode()
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith(name) and not line.startswith("#"))


def wait_ready(base: str, proc: subprocess.Popen[bytes], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit("collector exited during start")
        try:
            with urllib.request.urlopen(base + "/readyz", timeout=1) as resp:
                if resp.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise SystemExit("collector not ready")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (from /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def with_cpu(base: str, pid: int, run: Any) -> dict[str, Any]:
    """Run a load; add the events the collector accepted (2xx) per second, its CPU use, and
    requests and accepted events per collector CPU-second (the per-core figures)."""
    c0, a0, t0 = cpu_seconds(pid), metric(base, ACCEPTED), time.monotonic()
    res: dict[str, Any] = run()
    cpu, accepted = cpu_seconds(pid) - c0, metric(base, ACCEPTED) - a0
    res["accepted_events_per_s"] = round(accepted / (time.monotonic() - t0))
    res["collector_cpu_s"] = round(cpu, 2)
    res["requests_per_cpu_s"] = round(res["requests_total"] / cpu) if cpu else None
    res["accepted_events_per_cpu_s"] = round(accepted / cpu) if cpu else None
    return res


def scenario(base: str, pid: int, per_request: int, args: argparse.Namespace,
             tmp: Path) -> dict[str, Any]:
    use_wrk = shutil.which("wrk") is not None and not args.no_wrk
    print(f"-- {per_request} event(s) per request: saturation "
          f"({'wrk' if use_wrk else 'python'}, {args.connections} connections)", flush=True)

    def load(rate: float = 0, connections: int = args.connections) -> dict[str, Any]:
        if use_wrk:
            return run_wrk(base, per_request, connections, args.duration, tmp, rate)
        return run_python_load(base, per_request, args.duration, connections=connections,
                               rate=rate)

    sat = with_cpu(base, pid, load)
    print(f"   {sat['requests_per_s']:,} req/s, {sat['events_per_s']:,} events/s sent, "
          f"{sat['accepted_events_per_s']:,} accepted/s; per collector CPU-second: "
          f"{sat['requests_per_cpu_s']:,} req, {sat['accepted_events_per_cpu_s']:,} events; "
          f"non-2xx {sat.get('non_2xx', '-')}; latency {sat['latency_ms']}", flush=True)
    below = []
    for frac in args.fractions:
        rate = round(sat["requests_per_s"] * frac)
        res = with_cpu(base, pid, lambda rate=rate: load(rate, connections=16))
        res["fraction_of_saturation"] = frac
        print(f"   paced at {frac:.0%} ({rate:,} req/s): achieved {res['requests_per_s']:,} "
              f"req/s, latency {res['latency_ms']}, non-2xx {res.get('non_2xx', '-')}",
              flush=True)
        below.append(res)
    return {"events_per_request": per_request, "saturation": sat, "below_saturation": below}


def start_collector(args: argparse.Namespace, bootstrap: str, prefix: str,
                    port: int) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLICKSTREAM_")}
    env.update({
        "CLICKSTREAM_KAFKA_BOOTSTRAP": bootstrap, "CLICKSTREAM_BROKER_PROFILE": "embedded",
        "CLICKSTREAM_TOPIC_PREFIX": prefix, "CLICKSTREAM_COLLECTOR_PORT": str(port),
        "CLICKSTREAM_COLLECTOR_TRUSTED_PROXIES": "127.0.0.1/32",
        "CLICKSTREAM_LOG_LEVEL": "WARNING", "PYTHONUNBUFFERED": "1",
    })
    cmd = ["taskset", "-c", "0", sys.executable, "-m", "producers.collector"]
    return subprocess.Popen(cmd, cwd=ROOT, env=env)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--fractions", type=float, nargs="*", default=[0.5, 0.8])
    parser.add_argument("--no-wrk", action="store_true", help="use the python generator only")
    parser.add_argument("--quick", action="store_true", help="3 s runs (smoke test)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    # child-process mode (load generator)
    parser.add_argument("--load", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--per-request", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--rate", type=float, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.load:
        return load_main(args)
    if args.quick:
        args.duration = 3.0
    if shutil.which("taskset") is None or (os.cpu_count() or 1) < 2:
        raise SystemExit("needs taskset and 2 cores")

    from clickstream.embedded_broker import EmbeddedBroker, free_port
    from clickstream.settings import CommonSettings
    from clickstream.topics import create_topics_sync

    prefix = f"bench{uuid.uuid4().hex[:6]}"
    with tempfile.TemporaryDirectory() as tmpdir, EmbeddedBroker() as broker:
        tmp = Path(tmpdir)
        assert broker.process is not None
        subprocess.run(["taskset", "-pc", "1", str(broker.process.pid)], check=True,
                       capture_output=True)
        create_topics_sync(CommonSettings(kafka_bootstrap=broker.bootstrap, topic_prefix=prefix))
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        proc = start_collector(args, broker.bootstrap, prefix, port)
        try:
            wait_ready(base, proc)
            results = [scenario(base, proc.pid, n, args, tmp) for n in (1, 20)]
            accepted = metric(base, ACCEPTED)
            deadline = time.monotonic() + 60
            while metric(base, "clickstream_collector_records_delivered_total") < accepted \
                    and time.monotonic() < deadline:
                time.sleep(0.5)
            delivered = metric(base, "clickstream_collector_records_delivered_total")
        finally:
            proc.terminate()
            proc.wait(30)
    doc = {
        "bench": "collector",
        "generated_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "python": platform.python_version(), "machine": platform.machine(),
        "event_loop": "uvloop" if importlib.util.find_spec("uvloop") else "asyncio",
        "cores": os.cpu_count(),
        "setup": "collector pinned to core 0; load generator and Tansu broker on core 1; "
                 "acks=all; rate limiter on (XFF pool of 508 addresses); the machine is "
                 "shared, so requests_per_cpu_s (per collector CPU-second) is the steadier "
                 "per-core figure",
        "duration_s": args.duration,
        "targets": {"single_requests_per_s": 5000, "batched_events_per_s": 50000,
                    "p99_ms_below_saturation": 20},
        "results": results,
        "events_accepted": int(accepted), "records_delivered": int(delivered),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(doc, indent=2) + "\n")
    print(f"accepted {int(accepted):,} events, Kafka acknowledged {int(delivered):,}; "
          f"wrote {args.out}")


if __name__ == "__main__":
    main()
