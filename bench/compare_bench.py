"""Side by side, same machine, same broker, same data: our stream worker (full pass:
validate, enrich, sessions, attribution) against what a newcomer would write instead,
(a) Faust's page-view tutorial (per-event agent, group_by repartition, windowed table) and
(b) the same windowed page-view count with Quix Streams. Each contender, pinned to one core,
reads the same preloaded raw topic (load-generator traffic in the collector's envelopes, one
event per record: the tutorials' shape, and what the JS tracker's 1 s batching gives ~99% of
the time) from the start, in its own consumer group, one after the other.

    python -m bench.compare_bench [--events 50000] [--core 0]

Quix Streams runs from its own virtualenv (.clickstream/bench-venvs/quix, made on first use):
it pins pydantic < 2.14 and confluent-kafka, which the project does not want in its own
environment. The job modes (--job faust|quix) are what the contenders run; they import only
their framework and the standard library.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
QUIX_VENV = ROOT / ".clickstream" / "bench-venvs" / "quix"
WINDOW_SECONDS = 60


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _flatten(doc: Any) -> list[dict[str, Any]]:
    """A raw record (one envelope, or a visitor's group) -> its events."""
    if not isinstance(doc, dict):
        return []
    events = doc.get("events")
    if isinstance(events, list):
        return [e for e in events if isinstance(e, dict)]
    event = doc.get("event")
    return [event] if isinstance(event, dict) else []


class Done:
    """Counts raw events seen; when all arrived and were counted, writes timings and exits."""

    def __init__(self, expected_events: int, expected_views: int, out: Path) -> None:
        self.expected_events, self.expected_views, self.out = expected_events, expected_views, out
        self.events = self.views = 0
        self.first: tuple[float, float] | None = None

    def seen(self, n: int) -> None:
        if self.first is None:
            self.first = (time.monotonic(), _cpu())
        self.events += n

    def counted(self, n: int = 1) -> None:
        self.views += n
        if self.views >= self.expected_views and self.events >= self.expected_events:
            assert self.first is not None
            t0, c0 = self.first
            self.out.write_text(json.dumps({"events": self.events, "views": self.views,
                                            "wall_seconds": time.monotonic() - t0,
                                            "cpu_seconds": _cpu() - c0}))
            os._exit(0)


def faust_job(bootstrap: str, topic: str, done: Done) -> None:
    """Faust's page-view tutorial, applied to our raw topic: one agent, group_by the page
    (a repartition through Kafka), a tumbling-window table of counts, per event."""
    import faust

    app = faust.App("cmp-faust-tutorial", broker=f"kafka://{bootstrap}", store="memory://",
                    topic_partitions=4, web_enabled=False,
                    datadir=str(done.out.parent / "faust"))  # not the working directory
    raw = app.topic(topic, value_serializer="json")
    page_views = app.Table("page_views", default=int).tumbling(WINDOW_SECONDS,
                                                               expires=3600)

    def page(doc: Any) -> str:
        events = _flatten(doc)
        return str(events[0].get("url") or "") if events else ""

    @app.agent(raw)
    async def count_page_views(views: Any) -> None:
        async for doc in views.group_by(page, name="by_url"):
            events = _flatten(doc)
            done.seen(len(events))
            if events and events[0].get("type") == "pageview" and events[0].get("url"):
                page_views[events[0]["url"]] += 1
                done.counted()
            else:
                done.counted(0)  # the last records may not be page views

    sys.argv = ["cmp-faust", "worker", "-l", "warn", "--without-web"]
    app.main()


def quix_job(bootstrap: str, topic: str, done: Done) -> None:
    """The same count with Quix Streams: expand events, group_by page, tumbling window."""
    from quixstreams import Application

    app = Application(broker_address=bootstrap, consumer_group="cmp-quix",
                      auto_offset_reset="earliest", state_dir=str(done.out.parent / "quix"))
    sdf = app.dataframe(app.topic(topic, value_deserializer="json"))

    def events(doc: Any) -> list[dict[str, Any]]:
        evs = _flatten(doc)
        done.seen(len(evs))
        views = [e for e in evs if e.get("type") == "pageview" and e.get("url")]
        if not views:
            done.counted(0)  # the last records may not be page views
        return views

    sdf = sdf.apply(events, expand=True)
    sdf = sdf.group_by(lambda e: e["url"], name="url")
    sdf = sdf.tumbling_window(WINDOW_SECONDS * 1000).count().current()
    sdf = sdf.update(lambda _row: done.counted())
    app.run()


# ---------------------------------------------------------------------------------------


def _make_data(n: int, seed: int) -> tuple[list[tuple[bytes, bytes]], int, int]:
    from producers.collector.records import RecordMaker
    from producers.loadgen.model import JourneyMaker, Options

    maker = JourneyMaker(seed, Options(malformed_share=0.0))
    now = int(time.time() * 1000)
    records: list[tuple[bytes, bytes]] = []
    events = views = i = 0
    while events < n:
        j = maker.make(i, now)
        i += 1
        for req in j.requests:  # one event per record: the tutorials' shape
            rm = RecordMaker("raw", "invalid", now, j.visitor.ip, j.visitor.ua, False)
            records += [(r.key, r.value) for r in (rm.raw(ev) for ev in req)]
            events += len(req)
            views += sum(1 for e in req if e.get("type") == "pageview")
    return records, events, views


def _run_job(cmd: list[str], env: dict[str, str], out: Path, core: int,
             timeout: float) -> dict[str, Any]:
    import subprocess

    from bench.common import favour

    log = out.with_suffix(".log")
    with open(log, "wb") as f:
        proc = subprocess.Popen(cmd, env=env, stdout=f, stderr=subprocess.STDOUT, cwd=ROOT)
    os.sched_setaffinity(proc.pid, {core})
    favour([proc.pid])
    deadline = time.monotonic() + timeout
    while proc.poll() is None and time.monotonic() < deadline and not out.exists():
        time.sleep(0.5)
    if proc.poll() is None:
        proc.kill()
        proc.wait(10)
    if out.exists():
        return json.loads(out.read_text())
    tail = log.read_text(errors="replace").splitlines()[-12:]
    why = f"exited with {proc.returncode}" if proc.returncode and proc.returncode > 0 \
        else f"did not finish in {timeout:.0f} s"
    return {"error": why, "log_tail": tail}


def _ensure_quix() -> str | None:
    import subprocess

    py = QUIX_VENV / "bin" / "python"
    if not py.exists():
        subprocess.run([sys.executable, "-m", "venv", str(QUIX_VENV)], check=True)
    ok = subprocess.run([str(py), "-c", "import quixstreams, orjson"], capture_output=True)
    if ok.returncode != 0:
        inst = subprocess.run([str(py), "-m", "pip", "install", "-q", "quixstreams"],
                              capture_output=True, text=True)
        if inst.returncode != 0:
            return f"pip install quixstreams failed: {inst.stderr[-300:]}"
    return None


def _our_worker(bootstrap: str, home: Path, events: int, core: int) -> dict[str, Any]:
    import re
    import urllib.request

    from bench.common import cpu_seconds, favour
    from clickstream.embedded_broker import free_port
    from clickstream.stack import Service

    port = free_port()
    env = {**os.environ, "CLICKSTREAM_HOME": str(home), "CLICKSTREAM_KAFKA_BOOTSTRAP": bootstrap,
           "CLICKSTREAM_BROKER_PROFILE": "embedded", "CLICKSTREAM_TOPIC_PREFIX": "cmp",
           "CLICKSTREAM_WORKER_WEB_PORT": str(port), "CLICKSTREAM_LOG_LEVEL": "WARNING",
           "CLICKSTREAM_WORKER_ID": "cmp-ours"}
    worker = Service("worker", "streams", port, "/healthz", env, home / "worker.log")
    worker.start()
    assert worker.process is not None
    os.sched_setaffinity(worker.process.pid, {core})
    favour([worker.process.pid])
    worker.wait_healthy()
    first = None
    start = time.monotonic()
    try:
        while True:
            text = urllib.request.urlopen(f"{worker.url}/metrics", timeout=5).read().decode()
            m = re.search(r"^clickstream_worker_events_in_total ([0-9.e+]+)$", text, re.M)
            done = int(float(m.group(1))) if m else 0
            if done and first is None:
                first = (time.monotonic(), cpu_seconds(worker.process.pid))
            if done >= events:
                break
            if time.monotonic() - start > 600:
                return {"error": f"stalled at {done:,} events"}
            time.sleep(0.2)
        assert first is not None
        return {"events": events, "wall_seconds": time.monotonic() - first[0],
                "cpu_seconds": cpu_seconds(worker.process.pid) - first[1]}
    finally:
        worker.stop()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--events", type=int, default=50_000)
    ap.add_argument("--core", type=int, default=0)
    ap.add_argument("--seed", type=int, default=31)
    ap.add_argument("--job", choices=["faust", "quix"], help=argparse.SUPPRESS)
    ap.add_argument("--bootstrap", help=argparse.SUPPRESS)
    ap.add_argument("--topic", help=argparse.SUPPRESS)
    ap.add_argument("--expect", help=argparse.SUPPRESS)  # events,views
    ap.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.job:
        n_events, n_views = (int(x) for x in args.expect.split(","))
        done = Done(n_events, n_views, args.out)
        (faust_job if args.job == "faust" else quix_job)(args.bootstrap, args.topic, done)
        return
    compare(args)


def compare(args: argparse.Namespace) -> None:
    import asyncio
    import shutil
    import tempfile

    from bench.common import write_result
    from bench.worker_bench import preload
    from clickstream.embedded_broker import EmbeddedBroker
    from clickstream.settings import CommonSettings
    from clickstream.topics import create_topics_sync

    work = Path(tempfile.mkdtemp(prefix="bench-compare-"))
    results: dict[str, Any] = {}
    with EmbeddedBroker(log_path=work / "broker.log") as broker:
        settings = CommonSettings(home=work, kafka_bootstrap=broker.bootstrap,
                                  broker_profile="embedded", topic_prefix="cmp")
        create_topics_sync(settings)
        records, n_events, n_views = _make_data(args.events, args.seed)
        print(f"preloading {n_events:,} events ({n_views:,} pageviews) in {len(records):,} "
              f"raw records ...", flush=True)
        asyncio.run(preload(broker.bootstrap, settings.topic("raw"), records))
        job = ["--bootstrap", broker.bootstrap, "--topic", settings.topic("raw"),
               "--expect", f"{n_events},{n_views}"]
        env = {**os.environ, "PYTHONPATH": str(ROOT)}

        print("ours: full pass (validate, enrich, sessions, attribution) ...", flush=True)
        results["ours"] = _our_worker(broker.bootstrap, work / "ours", n_events, args.core)
        print(f"  {results['ours']}", flush=True)

        print("faust tutorial: agent, group_by, tumbling-window count ...", flush=True)
        results["faust_tutorial"] = _run_job(
            [sys.executable, "-m", "bench.compare_bench", "--job", "faust", *job,
             "--out", str(work / "faust.json")], env, work / "faust.json", args.core, 600)
        print(f"  {results['faust_tutorial']}", flush=True)

        print("quix streams: apply, group_by, tumbling-window count ...", flush=True)
        problem = _ensure_quix()
        if problem:
            results["quixstreams"] = {"error": problem}
        else:
            qenv = {k: v for k, v in env.items() if k != "VIRTUAL_ENV"}
            results["quixstreams"] = _run_job(
                [str(QUIX_VENV / "bin" / "python"), str(Path(__file__)), "--job", "quix",
                 *job, "--out", str(work / "quix.json")], qenv, work / "quix.json",
                args.core, 600)
        print(f"  {results['quixstreams']}", flush=True)
    for r in results.values():
        if "wall_seconds" in r:
            r["events_per_second"] = round(n_events / r["wall_seconds"])
            r["events_per_cpu_second"] = round(n_events / max(r["cpu_seconds"], 1e-9))
            r["wall_seconds"] = round(r["wall_seconds"], 2)
            r["cpu_seconds"] = round(r["cpu_seconds"], 2)
    ours = results["ours"].get("events_per_second")
    ratios = {name: round(ours / r["events_per_second"], 2)
              for name, r in results.items()
              if name != "ours" and ours and r.get("events_per_second")}
    result = {"events": n_events, "pageviews": n_views, "raw_records": len(records),
              "core": args.core, "results": results, "ours_over_other": ratios}
    print(f"ours / other (events/s): {ratios}")
    print(f"wrote {write_result('compare', result)}")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
