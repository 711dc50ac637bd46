"""One small interface over the three ways to reach ClickHouse.

- `ChdbStore`: the embedded engine (chDB) in this process, data in a directory. Only one
  process may open that directory, so while `clickstream up` runs, the sink owns it and
  everyone else goes through `RemoteStore` (the sink's local query endpoint).
- `ServerStore`: a ClickHouse server through clickhouse-driver (native protocol).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
import uuid
import weakref
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import unquote, urlsplit

import orjson

from sinks.insert_shape import InsertShape, quote_string

if TYPE_CHECKING:
    import pyarrow as pa

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
#: Settings of every insert. optimize_on_insert = 0: a ReplacingMergeTree would otherwise
#: collapse duplicates inside each inserted block, which measured several times the cost of
#: writing the part; duplicates are collapsed by merges and FINAL, and the rollups
#: (migration 0008) are built from idempotent states, so nothing counts them twice.
INSERT_SETTINGS = "optimize_on_insert = 0"
_JSON_INPUT = ("input_format_skip_unknown_fields = 1, "
               "date_time_input_format = 'best_effort'")


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

    def insert_arrow(self, table: str, data: pa.Table, dedup_token: str | None = None) -> None:
        ...

    def close(self) -> None: ...


def _parse_json_result(text: str) -> tuple[list[str], list[list[Any]]]:
    if not text.strip():
        return [], []
    doc = orjson.loads(text)
    names = [m["name"] for m in doc.get("meta", [])]
    return names, [list(r) for r in doc.get("data", [])]


class ChdbStore:
    """chDB session on a data directory; thread-safe by one lock.

    Inserts are written to a file in a private spool directory (in memory where /dev/shm
    exists) and read by `INSERT ... SELECT ... FROM file()`: see sinks/insert_shape.py."""

    def __init__(self, path: Path) -> None:
        from chdb import session

        path.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._session = session.Session(str(path))
        self._lock = threading.Lock()
        self._shapes: dict[str, InsertShape] = {}
        self._spool = _spool_dir()
        weakref.finalize(self, shutil.rmtree, self._spool, True)  # also if never closed

    def _run(self, sql: str, fmt: str = "CSV") -> str:
        with self._lock:
            try:
                result = self._session.query(sql, fmt)
            except UnicodeDecodeError as exc:  # chDB could not decode its own message: it
                # quotes input bytes that are not UTF-8, so the data is at fault
                raise StoreError("Cannot parse input: bytes that are not UTF-8 "
                                 f"(CANNOT_PARSE_INPUT; {exc})") from exc
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

    def shape(self, table: str) -> InsertShape:
        """The table's writable columns (cached; dropped when an insert fails)."""
        if table not in self._shapes:
            db, _, name = table.rpartition(".")
            _, rows = self.query_rows(
                "SELECT name, type, default_kind, default_expression FROM system.columns "
                f"WHERE database = {quote_string(db or 'default')} "
                f"AND table = {quote_string(name)} ORDER BY position")
            if not rows:
                raise StoreError(f"no table {table}")
            self._shapes[table] = InsertShape.from_rows(rows)
        return self._shapes[table]

    def _insert_file(self, table: str, write: Callable[[Path], object],
                     sql_for: Callable[[str], str]) -> None:
        """write(path) a spool file, then run sql_for(path); the file goes either way."""
        path = self._spool / f"{uuid.uuid4().hex}.bin"
        try:
            self._spool.mkdir(parents=True, exist_ok=True)  # in case it was cleaned away
            write(path)
        except OSError as exc:  # no room in the spool: worth a retry, like a busy server
            path.unlink(missing_ok=True)
            raise StoreError(f"cannot write the insert file {path}: {exc}") from exc
        try:
            self._run(sql_for(str(path)))
        except StoreError:
            self._shapes.pop(table, None)
            raise
        finally:
            path.unlink(missing_ok=True)

    def insert_json_rows(
        self, table: str, rows: Sequence[bytes], dedup_token: str | None = None
    ) -> None:
        if not rows:
            return
        settings = f"{INSERT_SETTINGS}, {_JSON_INPUT}{_token(dedup_token)}"
        shape = self.shape(table)
        self._insert_file(table, lambda path: path.write_bytes(b"\n".join(rows)),
                          lambda path: shape.json_insert(table, path, settings))

    def insert_arrow(self, table: str, data: pa.Table, dedup_token: str | None = None) -> None:
        """Arrow rows, written as an IPC stream file (dictionaries stay dictionaries: a
        LowCardinality column takes them without a lookup per value). Chunks (one per
        Kafka message) are combined first: chDB converts a record batch at a time, and a
        batch of a few hundred rows, each with dictionaries of its own, measured about twice
        its CPU per row of one batch of the whole insert."""
        if not data.num_rows:
            return
        import pyarrow as pa

        if data.num_columns and data.column(0).num_chunks > 1:
            data = data.combine_chunks()  # dictionaries unified, one record batch

        def write(path: Path) -> None:  # Arrow's own file: no Python call per buffer
            with pa.OSFile(str(path), "wb") as f, pa.ipc.new_stream(f, data.schema) as w:
                w.write_table(data)

        settings = f"{INSERT_SETTINGS}{_token(dedup_token)}"
        shape = self.shape(table)
        self._insert_file(table, write, lambda path: shape.arrow_insert(
            table, path, data.column_names, settings))

    def close(self) -> None:
        with self._lock:
            self._session.close()
        shutil.rmtree(self._spool, ignore_errors=True)


_SPOOL_PREFIX = "chdb-insert-"


def _spool_dir() -> Path:
    """A private directory for insert files, in memory (/dev/shm) where the system has it.
    Directories left by processes that died (a file is only kept for one insert, but a
    process killed during one leaves it) are removed."""
    shm = Path("/dev/shm")
    parent = shm if shm.is_dir() and os.access(shm, os.W_OK | os.X_OK) else \
        Path(tempfile.gettempdir())
    for old in parent.glob(f"{_SPOOL_PREFIX}*-*"):
        pid = old.name.removeprefix(_SPOOL_PREFIX).split("-", 1)[0]
        if pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(old, ignore_errors=True)
    return Path(tempfile.mkdtemp(prefix=f"{_SPOOL_PREFIX}{os.getpid()}-", dir=parent))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _token(dedup_token: str | None) -> str:
    return f", insert_deduplication_token = {quote_string(dedup_token)}" if dedup_token else ""


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
        self._insert_columns(table, columns, data, dedup_token)

    def insert_arrow(self, table: str, data: pa.Table, dedup_token: str | None = None) -> None:
        """Arrow rows, sent as native columns (a column the data lacks gets its type's
        default, as for JSON rows)."""
        if not data.num_rows:
            return
        fields = set(data.column_names)
        columns = self._columns(table)
        blank = [None] * data.num_rows
        data_cols = [[_coerce(v, kind) for v in (data.column(name).to_pylist()
                                                 if name in fields else blank)]
                     for name, kind in columns]
        self._insert_columns(table, columns, data_cols, dedup_token)

    def _insert_columns(self, table: str, columns: list[tuple[str, str]],
                        data: list[list[Any]], dedup_token: str | None) -> None:
        settings: dict[str, Any] = {"optimize_on_insert": 0}
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
    if base.startswith("Map"):  # a dict from JSON, (key, value) pairs from Arrow
        pairs = value.items() if isinstance(value, dict) else (value or [])
        return {str(k): str(v) for k, v in pairs}
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

    def insert_arrow(self, table: str, data: pa.Table, dedup_token: str | None = None) -> None:
        raise StoreError("inserts go through Kafka while the stack runs, not the query endpoint")

    def close(self) -> None:
        pass
