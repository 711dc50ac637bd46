"""Pick the store for a command: server URL, the running sink, or chDB directly."""

from __future__ import annotations

from clickstream.runstate import running_state
from clickstream.settings import CommonSettings
from sinks.store import ChdbStore, RemoteStore, ServerStore, Store


def open_store(settings: CommonSettings, *, direct: bool = False) -> Store:
    """A store for ad-hoc use. While `clickstream up` owns the chDB directory, its sink's
    query endpoint is used; `direct=True` opens chDB in this process (the owner does that)."""
    if settings.clickhouse_url:
        return ServerStore(settings.clickhouse_url)
    if not direct:
        state = running_state(settings.home)
        sink = (state or {}).get("services", {}).get("sink")
        if sink and sink.get("url"):
            return RemoteStore(sink["url"])
    return ChdbStore(settings.chdb_path)
