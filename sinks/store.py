"""One small interface over the three ways to reach ClickHouse.

- `ChdbStore`: the embedded engine (chDB) in this process, data in a directory. Only one
  process may open that directory, so while `clickstream up` runs, the sink owns it and
  everyone else goes through `RemoteStore` (the sink's local query endpoint).
- `ServerStore`: a ClickHouse server through clickhouse-driver (native protocol).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import unquote, urlsplit

import orjson

#: Text formats `clickstream sql --format` offers, as ClickHouse format names.
FORMATS = {
    "tsv": "TabSeparatedWithNames",
    "csv": "CSVWithNames",
    "json": "JSONEachRow",
    "pretty": "PrettyCompactMonoBlock",
}

_JSON_SETTINGS = (
    "output_format_json_quote_64bit_integers=0, output_format_json_quote_decimals=0, "
    "output_format_json_quote_64bit_floats=0"
)


class StoreError(RuntimeError):
    """ClickHouse rejected a statement (message says why)."""


class Store(Protocol):
    """What the sink, migrations, CLI and tests need from ClickHouse."""

    def execute(self, sql: str) -> None: ...

    def query_text(self, sql: str, fmt: str = "TabSeparatedWithNames") -> str: ...

    def query_rows(self, sql: str) -> tuple[list[str], list[list[Any]]]: ...

    def insert_json_rows(
        self, table: str, rows: Sequence[bytes], dedup_token: str | None = None
    ) -> None: ...

    def close(self) -> None: ...


def _parse_json_result(text: str) -> tuple[list[str], list[list[Any]]]:
    if not text.strip():
        return [], []
    doc = orjson.loads(text)
    names = [m["name"] for m in doc.get("meta", [])]
    return names, [list(r) for r in doc.get("data", [])]


class ChdbStore:
    """chDB session on a data directory; thread-safe by one lock."""

    def __init__(self, path: Path) -> None:
        from chdb import session

        path.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._session = session.Session(str(path))
        self._lock = threading.Lock()

    def _run(self, sql: str, fmt: str = "CSV") -> str:
        with self._lock:
            try:
                result = self._session.query(sql, fmt)
            except Exception as exc:  # chdb raises its own error types
                raise StoreError(str(exc).strip()) from exc
        return "" if result is None else str(result)

    def execute(self, sql: str) -> None:
        self._run(sql)

    def query_text(self, sql: str, fmt: str = "TabSeparatedWithNames") -> str:
        return self._run(sql, fmt)

    def query_rows(self, sql: str) -> tuple[list[str], list[list[Any]]]:
        sql = sql.rstrip().rstrip(";")
        return _parse_json_result(self._run(f"{sql} SETTINGS {_JSON_SETTINGS}", "JSONCompact"))

    def insert_json_rows(
        self, table: str, rows: Sequence[bytes], dedup_token: str | None = None
    ) -> None:
        if not rows:
            return
        settings = "input_format_skip_unknown_fields=1, date_time_input_format='best_effort'"
        if dedup_token:
            settings += f", insert_deduplication_token='{dedup_token}'"
        body = b"\n".join(rows).decode("utf-8", "replace")
        self._run(f"INSERT INTO {table} SETTINGS {settings} FORMAT JSONEachRow\n{body}")

    def close(self) -> None:
        with self._lock:
            self._session.close()


class ServerStore:
    """ClickHouse server through clickhouse-driver (native protocol, compression)."""

    def __init__(self, url: str) -> None:
        from clickhouse_driver import Client

        parts = urlsplit(url)
        self.database = unquote(parts.path.strip("/")) or "clickstream"
        self._client = Client(
            host=parts.hostname or "localhost",
            port=parts.port or (9440 if parts.scheme == "clickhouses" else 9000),
            user=unquote(parts.username or "default"),
            password=unquote(parts.password or ""),
            secure=parts.scheme == "clickhouses",
            compression="lz4",
            settings={"use_numpy": False},
        )
        self._lock = threading.Lock()

    def _call(self, sql: str, **kw: Any) -> Any:
        from clickhouse_driver.errors import Error as DriverError

        with self._lock:
            try:
                return self._client.execute(sql, **kw)
            except DriverError as exc:
                raise StoreError(str(exc).strip()) from exc

    def execute(self, sql: str) -> None:
        self._call(sql)

    def query_rows(self, sql: str) -> tuple[list[str], list[list[Any]]]:
        rows, columns = self._call(sql, with_column_types=True)
        return [c[0] for c in columns], [list(r) for r in rows]

    def query_text(self, sql: str, fmt: str = "TabSeparatedWithNames") -> str:
        from clickstream.textformat import format_rows

        names, rows = self.query_rows(sql)
        return format_rows(names, rows, fmt)

    def insert_json_rows(
        self, table: str, rows: Sequence[bytes], dedup_token: str | None = None
    ) -> None:
        """Columnar insert: JSON rows are decoded and sent as native columns."""
        if not rows:
            return
        columns = self._columns(table)
        decoded = [orjson.loads(r) for r in rows]
        data = [[_coerce(d.get(name), kind) for d in decoded] for name, kind in columns]
        settings: dict[str, Any] = {}
        if dedup_token:
            settings["insert_deduplication_token"] = dedup_token
        names = ", ".join(f"`{n}`" for n, _ in columns)
        self._call(f"INSERT INTO {table} ({names}) VALUES", params=data, columnar=True,
                   settings=settings)

    _column_cache: dict[str, list[tuple[str, str]]]

    def _columns(self, table: str) -> list[tuple[str, str]]:
        cache = self.__dict__.setdefault("_column_cache", {})
        if table not in cache:
            rows, _ = self._call(f"DESCRIBE TABLE {table}", with_column_types=True)
            cache[table] = [(r[0], r[1]) for r in rows if r[2] not in ("MATERIALIZED", "ALIAS")]
        return cache[table]

    def close(self) -> None:
        self._client.disconnect()


def _coerce(value: Any, kind: str) -> Any:
    """JSON value -> the Python type clickhouse-driver wants for a column type."""
    from datetime import UTC, datetime
    from decimal import Decimal
    from uuid import UUID

    base = kind.removeprefix("LowCardinality(").rstrip(")") if kind.startswith("Low") else kind
    if base.startswith("DateTime"):
        if not value:
            return datetime.fromtimestamp(0, UTC)
        return datetime.fromisoformat(str(value).replace(" ", "T")).replace(tzinfo=UTC)
    if base == "UUID":
        return UUID(value) if value else UUID(int=0)
    if base.startswith("Decimal"):
        return Decimal(str(value or 0))
    if base.startswith(("UInt", "Int")):
        return int(value or 0)
    if base.startswith("Float"):
        return float(value or 0.0)
    if base.startswith("Map"):
        return {str(k): str(v) for k, v in (value or {}).items()}
    if base.startswith("Array"):
        return list(value or [])
    return "" if value is None else str(value)


class RemoteStore:
    """The running sink's local query endpoint (used while it owns the chDB directory)."""

    def __init__(self, base_url: str, timeout: float = 60.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout

    def _post(self, path: str, payload: dict[str, Any]) -> bytes:
        import urllib.error
        import urllib.request

        req = urllib.request.Request(
            self.base_url + path, data=orjson.dumps(payload), method="POST",
            headers={"Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                return resp.read()
        except urllib.error.HTTPError as exc:
            raise StoreError(exc.read().decode("utf-8", "replace")) from exc

    def execute(self, sql: str) -> None:
        self._post("/v1/query", {"sql": sql, "format": "TabSeparated"})

    def query_text(self, sql: str, fmt: str = "TabSeparatedWithNames") -> str:
        return self._post("/v1/query", {"sql": sql, "format": fmt}).decode("utf-8", "replace")

    def query_rows(self, sql: str) -> tuple[list[str], list[list[Any]]]:
        doc = orjson.loads(self._post("/v1/query", {"sql": sql, "rows": True}))
        return doc["names"], doc["rows"]

    def insert_json_rows(
        self, table: str, rows: Sequence[bytes], dedup_token: str | None = None
    ) -> None:
        raise StoreError("inserts go through Kafka while the stack runs, not the query endpoint")

    def close(self) -> None:
        pass
