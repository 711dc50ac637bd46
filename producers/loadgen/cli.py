"""`clickstream loadgen`: arguments, progress bar, summary."""

from __future__ import annotations

import argparse
import asyncio
import signal
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the parser is built on every `clickstream` call: import the rest lazily
    from producers.loadgen.send import Stats, Transport


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--target", choices=["http", "kafka"], default="http",
                   help="http: POST to a collector (default); kafka: raw records on "
                        "<prefix>.raw, as the collector writes them")
    p.add_argument("--url", default=None,
                   help="collector base URL (default http://CLICKSTREAM_COLLECTOR_HOST:PORT)")
    p.add_argument("--bootstrap", default=None,
                   help="Kafka bootstrap (default CLICKSTREAM_KAFKA_BOOTSTRAP, or the running "
                        "stack's broker)")
    p.add_argument("--rate", type=float, default=1000.0,
                   help="events per second (0: as fast as possible; default 1000)")
    p.add_argument("--duration", type=float, default=None,
                   help="seconds to run (journeys in flight are finished)")
    p.add_argument("--visitors", type=int, default=None, help="stop after this many visitors")
    p.add_argument("--events", type=int, default=None, help="stop after about this many events")
    p.add_argument("--seed", type=int, default=1, help="same seed, same traffic (default 1)")
    p.add_argument("--concurrency", type=int, default=64, help="visitors sent in parallel")
    p.add_argument("--truth", type=Path, default=None,
                   help="directory for the ground truth (JSON Lines; see docs/loadgen.md)")
    p.add_argument("--bot-share", type=float, default=0.03)
    p.add_argument("--malformed-share", type=float, default=0.005,
                   help="share of requests carrying one malformed event")
    p.add_argument("--batch-window-ms", type=int, default=1000,
                   help="tracker batching: events within this time share a request "
                        "(the JS tracker: 1000)")
    p.add_argument("--split-timezone", default="UTC",
                   help="the worker's session time zone (sessions never cross its midnight)")
    p.add_argument("--prepare", action="store_true",
                   help="make every journey first (needs --events or --visitors), then send: "
                        "the sending then costs a fraction of the CPU (for benchmarks)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def _transport(args: argparse.Namespace) -> Transport:
    from clickstream.runstate import running_state
    from clickstream.settings import CollectorSettings
    from producers.loadgen.send import HttpTransport, KafkaTransport

    settings = CollectorSettings()
    if args.target == "http":
        url = args.url or f"http://{settings.collector_host}:{settings.collector_port}"
        return HttpTransport(url, args.concurrency)
    bootstrap = args.bootstrap or settings.kafka_bootstrap
    if not bootstrap:
        state = running_state(settings.home) or {}
        bootstrap = (state.get("broker") or {}).get("bootstrap")
    if not bootstrap:
        raise SystemExit("no Kafka: pass --bootstrap, set CLICKSTREAM_KAFKA_BOOTSTRAP, or run "
                         "`clickstream up`")
    # no broker configured: the embedded one (no idempotent producer, which Tansu refuses)
    profile = "embedded" if settings.embedded_broker else settings.broker_profile
    return KafkaTransport(settings.model_copy(update={"kafka_bootstrap": bootstrap,
                                                      "broker_profile": profile}))


def main(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from producers.loadgen.model import JourneyMaker, Options
    from producers.loadgen.send import Limits, prepare, run
    from producers.loadgen.truth import TruthWriter

    console = Console(stderr=True)
    if args.prepare and args.visitors is None and args.events is None:
        raise SystemExit("--prepare needs --events or --visitors (it makes the journeys first)")
    if args.duration is None and args.visitors is None and args.events is None:
        args.duration = 60.0
    options = Options(bot_share=args.bot_share, malformed_share=args.malformed_share,
                      batch_window_ms=args.batch_window_ms, split_timezone=args.split_timezone)
    maker = JourneyMaker(args.seed, options)
    limits = Limits(args.duration, args.visitors, args.events)
    prepared = None
    if args.prepare:
        with console.status("making journeys"):
            prepared = prepare(maker, limits)
        console.print(f"prepared {len(prepared):,} visitors, "
                      f"{sum(j.events for j in prepared):,} events")
    transport = _transport(args)
    truth = TruthWriter(args.truth)
    total = args.duration or args.visitors or args.events
    progress = Progress(TextColumn("[bold]loadgen[/bold]"), BarColumn(),
                        TextColumn("{task.fields[line]}"), TimeElapsedColumn(),
                        console=console, disable=args.quiet)
    task = progress.add_task("send", total=total, line="")

    def tick(stats: Stats) -> None:
        done = stats.elapsed if args.duration else (
            stats.journeys if args.visitors else stats.events)
        line = (f"{stats.events:,} events ({stats.events / max(stats.elapsed, 1e-9):,.0f}/s)"
                f"  {stats.requests:,} requests  accepted {stats.accepted:,}"
                f"  rejected {stats.rejected:,}  failed {stats.failed:,}")
        progress.update(task, completed=min(done, total), line=line)

    async def go() -> Stats:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        return await run(maker, transport, rate=args.rate, truth=truth, stop=stop,
                         limits=limits, concurrency=args.concurrency, on_tick=tick,
                         prepared=prepared)

    with progress:
        stats = asyncio.run(go())
    summary = {"seed": args.seed, "target": args.target, "rate": args.rate,
               "options": {"bot_share": options.bot_share,
                           "malformed_share": options.malformed_share,
                           "batch_window_ms": options.batch_window_ms,
                           "split_timezone": options.split_timezone},
               **stats.as_dict()}
    truth.close(summary)
    console.print(f"sent {stats.events:,} events from {stats.journeys:,} visitors in "
                  f"{stats.requests:,} requests over {stats.elapsed:,.1f} s "
                  f"({stats.events / max(stats.elapsed, 1e-9):,.0f} events/s); accepted "
                  f"{stats.accepted:,}, rejected {stats.rejected:,}, failed {stats.failed:,}"
                  + (f"; ground truth in {args.truth}" if args.truth else ""))
    if stats.statuses.get("429"):
        console.print("[yellow]rate limited (429)[/yellow]: every request came from this host."
                      " Start the collector with CLICKSTREAM_COLLECTOR_TRUSTED_PROXIES="
                      "127.0.0.1/32 so each visitor's X-Forwarded-For address counts")
    return 1 if stats.failed else 0
