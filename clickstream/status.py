"""`clickstream status`: which services run, their health, and what the store holds."""

from __future__ import annotations

import urllib.error
import urllib.request

from rich.console import Console
from rich.table import Table

from clickstream.runstate import running_state
from clickstream.settings import CommonSettings
from sinks.connect import open_store
from sinks.store import StoreError

console = Console()


def _health(url: str, path: str) -> str:
    try:
        with urllib.request.urlopen(url + path, timeout=2) as resp:
            return "[green]healthy[/green]" if resp.status == 200 else f"HTTP {resp.status}"
    except urllib.error.HTTPError as exc:
        return f"[red]HTTP {exc.code}[/red]"
    except (urllib.error.URLError, OSError):
        return "[red]unreachable[/red]"


def print_status(settings: CommonSettings) -> int:
    state = running_state(settings.home)
    if state:
        table = Table("service", "health", "url", "pid", title=f"stack (pid {state['pid']})")
        table.add_row("broker", "embedded" if state["broker"]["embedded"] else "external",
                      state["broker"]["bootstrap"], "")
        for name, svc in state["services"].items():
            path = "/readyz" if name == "collector" else "/healthz"
            table.add_row(name, _health(svc["url"], path), svc["url"], str(svc["pid"]))
        console.print(table)
    else:
        console.print(f"no stack running for home {settings.home} (start: clickstream up)")
    try:
        store = open_store(settings)
        try:
            _, rows = store.query_rows(
                "SELECT name, total_rows, formatReadableSize(total_bytes) FROM system.tables "
                f"WHERE database = '{settings.database}' ORDER BY name")
        finally:
            store.close()
    except (StoreError, OSError) as exc:
        console.print(f"[red]store not reachable:[/red] {exc}")
        return 1
    table = Table("table", "rows", "size", title=f"store: {settings.database}")
    for row in rows:
        table.add_row(str(row[0]), f"{row[1] or 0:,}", str(row[2] or ""))
    console.print(table)
    return 0
