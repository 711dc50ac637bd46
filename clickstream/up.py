"""`clickstream up`: run everything in the foreground, show what flows, stop cleanly."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
import time

from rich.console import Console
from rich.live import Live
from rich.table import Table

from clickstream.runstate import running_state
from clickstream.settings import CollectorSettings
from clickstream.stack import Stack, StackError
from producers.demo import DemoStats, send_demo
from sinks.store import RemoteStore, ServerStore, Store, StoreError

console = Console(stderr=True)


def _port_free(host: str, port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def run_up(settings: CollectorSettings, *, demo: bool, rate: float, port: int | None,
           duration: float | None) -> int:
    state = running_state(settings.home)
    if state:
        console.print(f"[red]already running[/red] (pid {state['pid']}) for home "
                      f"{settings.home}: stop it first, or set CLICKSTREAM_HOME")
        return 1
    port = port or settings.collector_port
    if not _port_free(settings.collector_host, port):
        console.print(f"[red]port {port} is in use[/red]: pass --port N or set "
                      "CLICKSTREAM_COLLECTOR_PORT")
        return 1
    stack = Stack(settings, collector_port=port, collector_host=settings.collector_host)
    try:
        with console.status("starting") as status:
            stack.start(on_step=lambda msg: status.update(msg))
    except StackError as exc:
        console.print(f"[red]could not start:[/red] {exc}")
        return 1
    _print_banner(stack)
    try:
        asyncio.run(_monitor(stack, demo=demo, rate=rate, duration=duration))
    finally:
        # A second Ctrl-C must not cut the shutdown short (it would orphan the broker).
        previous = signal.signal(signal.SIGINT, lambda *_: console.print(
            "still stopping: the collector drains, the sink flushes..."))
        try:
            with console.status("stopping: collector, worker, sink, broker"):
                stack.stop()
        finally:
            signal.signal(signal.SIGINT, previous)
        console.print("stopped")
    return 0


def _print_banner(stack: Stack) -> None:
    url = stack.collector_url
    broker = "embedded Tansu" if stack.broker else stack.bootstrap
    store = stack.settings.clickhouse_url or f"chDB in {stack.settings.chdb_path}"
    console.print(f"[bold green]clickstream is up[/bold green]  collector [bold]{url}[/bold]"
                  f"  broker {broker}  store {store}")
    console.print(f"  embed: <script defer src=\"{url}/t.js\" data-site=\"SITE_ID\"></script>")
    console.print("  query: clickstream sql \"SELECT site_id, count() FROM clickstream.events "
                  "GROUP BY site_id\"    stop: Ctrl-C")


def _stats_store(stack: Stack) -> Store:
    if stack.settings.clickhouse_url:
        return ServerStore(stack.settings.clickhouse_url)
    return RemoteStore(stack.services["sink"].url, timeout=10)


async def _monitor(stack: Stack, *, demo: bool, rate: float, duration: float | None) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    stats = DemoStats()
    demo_task = asyncio.create_task(send_demo(stack.collector_url, rate, stats, stop)) \
        if demo else None
    store = _stats_store(stack)
    db = stack.settings.database
    started = time.monotonic()
    first_rows: int | None = None
    rows = 0
    rate_now = 0.0
    last = (time.monotonic(), 0)
    with Live(console=console, refresh_per_second=2, transient=False) as live:
        while not stop.is_set():
            for svc in stack.services.values():
                if not svc.alive():
                    console.print(f"[yellow]{svc.name} exited; restarting[/yellow] "
                                  f"(log: {svc.log_path})")
                    await asyncio.to_thread(stack.restart, svc.name)
            with contextlib.suppress(StoreError, OSError):
                rows = int((await asyncio.to_thread(
                    store.query_rows, f"SELECT count() FROM {db}.events"))[1][0][0])
                first_rows = rows if first_rows is None else first_rows
                now = time.monotonic()
                rate_now = (rows - last[1]) / max(1e-6, now - last[0])
                last = (now, rows)
            elapsed = time.monotonic() - started
            live.update(_table(stack, stats if demo else None, rows, rate_now, elapsed))
            if duration and elapsed >= duration:
                break
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(stop.wait(), 1.0)
    stop.set()
    if demo_task:
        await demo_task
    console.print()
    elapsed = time.monotonic() - started
    stored = rows - (first_rows or 0)
    console.print(f"{stored:,} events stored in {elapsed:.0f} s "
                  f"({stored / max(elapsed, 1e-6):,.0f} events/s end to end)"
                  + (f"; demo sent {stats.sent:,}, accepted {stats.accepted:,}" if demo else ""))


def _table(stack: Stack, stats: DemoStats | None, rows: int, rate: float,
           elapsed: float) -> Table:
    table = Table(title=f"clickstream  up {elapsed:,.0f} s", show_header=True)
    table.add_column("service")
    table.add_column("state")
    table.add_column("url")
    for svc in stack.services.values():
        state = "[green]up[/green]" if svc.alive() else "[red]down[/red]"
        if svc.restarts:
            state += f" ({svc.restarts} restarts)"
        table.add_row(svc.name, state, svc.url)
    table.add_row("events in ClickHouse", f"{rows:,}", f"{rate:,.0f}/s")
    if stats is not None:
        table.add_row("demo sent / accepted", f"{stats.sent:,} / {stats.accepted:,}",
                      f"{stats.failed_requests} failed requests")
    return table
