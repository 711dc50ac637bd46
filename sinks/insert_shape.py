"""The INSERT the embedded store (chDB) runs for a batch of rows kept in a file.

Rows reach chDB as a file read with the `file()` table function rather than as text inlined
in the statement: an inlined body goes through the query parser, and measured 2-4 times
slower (bench/store_bench.py). The file is read with a structure in which LowCardinality
columns are plain strings: a row format filling a LowCardinality column looks each value up
in its dictionary one by one, while the INSERT's cast converts whole columns, measured about
twice as fast for the events table (25 LowCardinality columns). Columns with a DEFAULT
expression are read as Nullable and defaulted in the SELECT, as an INSERT ... FORMAT would
(a missing or null field gets the default).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

#: Column kinds an INSERT cannot write.
_COMPUTED = ("MATERIALIZED", "ALIAS", "EPHEMERAL")
#: Types that cannot be wrapped in Nullable.
_NOT_NULLABLE = ("Array(", "Map(", "Tuple(", "Nullable(", "Nested(", "Object(", "JSON",
                 "Variant(", "Dynamic", "LowCardinality(", "AggregateFunction(",
                 "SimpleAggregateFunction(")


@dataclass(frozen=True)
class Column:
    name: str
    type: str
    default_kind: str = ""
    default_expression: str = ""


def plain_type(kind: str) -> str:
    """The type with every LowCardinality(...) wrapper removed."""
    out, i, marker = [], 0, "LowCardinality("
    depth_of_open: list[bool] = []  # for each open paren: was it a removed wrapper?
    while i < len(kind):
        if kind.startswith(marker, i):
            depth_of_open.append(True)
            i += len(marker)
            continue
        ch = kind[i]
        if ch == "(":
            depth_of_open.append(False)
        elif ch == ")" and depth_of_open and depth_of_open.pop():
            i += 1
            continue
        out.append(ch)
        i += 1
    return "".join(out)


def quote_name(name: str) -> str:
    return "`" + name.replace("\\", "\\\\").replace("`", "\\`") + "`"


def quote_string(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


@dataclass(frozen=True)
class InsertShape:
    """The writable columns of a table, as read from system.columns."""

    columns: tuple[Column, ...]

    @classmethod
    def from_rows(cls, rows: Sequence[Sequence[object]]) -> InsertShape:
        """Rows of (name, type, default_kind, default_expression)."""
        cols = tuple(Column(str(n), str(t), str(k or ""), str(e or "")) for n, t, k, e in rows)
        return cls(tuple(c for c in cols if c.default_kind not in _COMPUTED))

    def _defaulted(self, col: Column) -> bool:
        return (col.default_kind == "DEFAULT" and bool(col.default_expression)
                and not plain_type(col.type).startswith(_NOT_NULLABLE))

    def structure(self) -> str:
        """The file's structure: plain strings for LowCardinality, Nullable for defaults."""
        parts = []
        for col in self.columns:
            kind = plain_type(col.type)
            parts.append(f"{quote_name(col.name)} "
                         f"{f'Nullable({kind})' if self._defaulted(col) else kind}")
        return ", ".join(parts)

    def _select(self, col: Column) -> str:
        """The column as the SELECT reads it: strings made valid UTF-8 (a String column
        takes any bytes, but readers of it decode UTF-8), defaults filled in."""
        name = quote_name(col.name)
        if self._defaulted(col):
            return f"ifNull({name}, {col.default_expression}) AS {name}"
        if plain_type(col.type) == "String":
            return f"toValidUTF8({name}) AS {name}"
        return name

    def json_insert(self, table: str, path: str, settings: str) -> str:
        """INSERT of a JSONEachRow file with these columns."""
        names = ", ".join(quote_name(c.name) for c in self.columns)
        select = ", ".join(self._select(c) for c in self.columns)
        return (f"INSERT INTO {table} ({names}) SETTINGS {settings} SELECT {select} "
                f"FROM file({quote_string(path)}, 'JSONEachRow', "
                f"{quote_string(self.structure())})")

    def arrow_insert(self, table: str, path: str, fields: Sequence[str],
                     settings: str) -> str:
        """INSERT of an Arrow IPC stream file: the fields that are columns of the table
        (types converted by the INSERT; columns the file lacks get their defaults)."""
        known = {c.name for c in self.columns}
        names = ", ".join(quote_name(f) for f in fields if f in known)
        if not names:
            raise ValueError(f"no field of the Arrow data is a column of {table}")
        return (f"INSERT INTO {table} ({names}) SETTINGS {settings} SELECT {names} "
                f"FROM file({quote_string(path)}, 'ArrowStream')")
