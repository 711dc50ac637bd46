"""`clickstream live SITE`: the live endpoint of the running stack, redrawn in the terminal."""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from typing import Any

import orjson
from rich.console import Console, Group
from rich.live import Live
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from clickstream.runstate import running_state
from clickstream.settings import CommonSettings

BARS = " ▁▂▃▄▅▆▇█"


def fetch(base_url: str, site: str, timeout: float = 10.0) -> dict[str, Any]:
    with urllib.request.urlopen(f"{base_url}/v1/stats/{site}/live", timeout=timeout) as resp:
        return orjson.loads(resp.read())  # type: ignore[no-any-return]


def sparkline(values: list[int]) -> str:
    top = max(values, default=0)
    if not top:
        return BARS[0] * len(values)
    return "".join(BARS[min(8, round(v * 8 / top))] for v in values)


def render(doc: dict[str, Any]) -> Group:
    now = doc["now"]
    head = Text.assemble(
        (f"{doc['site_id']}  ", "bold"),
        (f"{now['visitors']:,} visitors", "bold green"), " in the last 5 min · ",
        f"{now['pageviews']:,} pageviews · {now['sessions']:,} sessions · ",
        f"{now['conversions']:,} conversions · revenue {now['revenue']}")
    series = [m["pageviews"] for m in doc["pageviews_per_minute"]]
    spark = Text.assemble("pageviews/min, last 30 min  ", (sparkline(series), "cyan"),
                          f"  now {series[-1] if series else 0:,}")
    tables = Table.grid(padding=(0, 2))
    row = []
    for title, key in (("top pages", "top_pages"), ("top sources", "top_sources"),
                       ("channels", "top_channels")):
        t = Table(title=title, title_justify="left", show_edge=False)
        t.add_column("value", overflow="fold", max_width=40)
        t.add_column("visitors", justify="right")
        t.add_column("pageviews", justify="right")
        for item in doc[key]:
            t.add_row(item["value"] or "(none)", f"{item['visitors']:,}",
                      f"{item['pageviews']:,}")
        row.append(t)
    tables.add_row(*row)
    return Group(Panel(Group(head, spark)), tables)


def sink_url(settings: CommonSettings) -> str | None:
    state = running_state(settings.home)
    if not state:
        return None
    return str(state["services"]["sink"]["url"])


def run_live(site: str, *, url: str | None = None, interval: float = 2.0,
             once: bool = False) -> int:
    """Poll the live endpoint and redraw until Ctrl-C (or print one frame with once)."""
    console = Console()
    base = url or sink_url(CommonSettings())
    if not base:
        console.print("[red]no running stack[/red] (start one with `clickstream up`, or pass "
                      "--url of a sink)")
        return 2

    def frame() -> Any:
        try:
            return render(fetch(base, site))
        except (urllib.error.URLError, OSError, KeyError, ValueError) as exc:
            return Text(f"live endpoint unavailable: {exc}", style="red")

    if once:
        console.print(frame())
        return 0
    with Live(frame(), console=console, refresh_per_second=4, screen=False) as live:
        while True:
            time.sleep(interval)
            live.update(frame())
