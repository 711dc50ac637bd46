"""CREATE TABLE for a ClickHouse cluster: a Replicated*MergeTree `<table>_local` on every
node, and a Distributed table under the original name (sinks/cluster.py uses this). A Null
table (an insert entry point feeding materialized views) stays Null on every node; its
Distributed table is sharded like the table its materialized view writes to.

Sharding keeps a replayed row on the shard of its original, so ReplacingMergeTree and FINAL
stay exact per shard: tables with `site_id` and `visitor_id` are sharded by visitor
(`cityHash64(site_id, visitor_id)`: one visitor's events, sessions and conversions on one
shard; this needs a row's visitor_id to be fixed by its sorting key, as it is for events,
sessions and conversions, whose id is the converting event's); other tables by their
sorting key, which is the key rows are replaced by.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from sinks.cluster_sql import (
    Token,
    closing,
    quote_name,
    quote_string,
    read_name,
    splice,
    split_top,
    text_of,
    tokenize,
)

SUFFIX = "_local"
#: Keeper path of a sharded table's replicas; {shard} and {replica} are server macros.
SHARD_PATH = "/clickhouse/tables/{{shard}}/{database}/{table}"
#: Tables on every node of the cluster (one replica set, not sharded): migration bookkeeping.
EVERYWHERE_PATH = "/clickhouse/tables/all/{database}/{table}"
VISITOR_KEY = ("site_id", "visitor_id")
_CLAUSES = {"PARTITION", "PRIMARY", "ORDER", "SAMPLE", "TTL", "SETTINGS", "COMMENT"}
_ENGINE = re.compile(r"(\w*)MergeTree")
_SETTING_RENAMES = {"non_replicated_deduplication_window": "replicated_deduplication_window"}


class UnsupportedStatement(ValueError):
    """A statement the cluster rendering does not know how to make cluster-safe."""


@dataclass(frozen=True)
class ClusterTable:
    """One CREATE TABLE rendered for the cluster."""

    database: str
    table: str
    columns: list[str]
    local: str  # CREATE TABLE <table>_local ON CLUSTER ... (Replicated*MergeTree or Null)
    on_cluster: str
    cluster: str
    if_not_exists: bool
    comment: str  # the COMMENT literal, or ""
    sharding_key: str | None  # None for a Null table: it shards like what it feeds
    replacing: bool  # rows with the same key replace or cancel each other in merges

    def distributed(self, key: str) -> str:
        """CREATE TABLE <table> ON CLUSTER ... AS <table>_local ENGINE = Distributed(...)."""
        db, local = quote_name(self.database), self.table + SUFFIX
        return (
            f"CREATE TABLE {'IF NOT EXISTS ' if self.if_not_exists else ''}"
            f"{db}.{quote_name(self.table)}{self.on_cluster} AS {db}.{quote_name(local)}\n"
            f"ENGINE = Distributed({quote_string(self.cluster)}, {quote_string(self.database)}, "
            f"{quote_string(local)}, {key})"
            + (f"\nCOMMENT {self.comment}" if self.comment else ""))


@dataclass(frozen=True)
class _Parsed:
    sql: str
    tokens: list[Token]
    name_at: int  # token index of the table name's last token
    database: str
    table: str
    if_not_exists: bool
    columns: list[str]
    engine_at: int  # token index of the engine name
    clauses: dict[str, list[Token]]  # ORDER/SETTINGS/COMMENT/... -> tokens after the keyword


def _parse(sql: str) -> _Parsed:
    tokens = tokenize(sql)
    i = 2
    if [t.text.upper() for t in tokens[:2]] != ["CREATE", "TABLE"]:
        raise UnsupportedStatement("only CREATE TABLE [IF NOT EXISTS] is supported "
                                   "(not OR REPLACE, TEMPORARY or ATTACH)")
    ine = [t.text.upper() for t in tokens[i:i + 3]] == ["IF", "NOT", "EXISTS"]
    name = read_name(tokens, i + 3 if ine else i)
    if name is None or name.database is None:
        raise UnsupportedStatement("the table name must be qualified: {db}.name")
    if name.table.endswith(SUFFIX):
        raise UnsupportedStatement(f"table names ending in {SUFFIX} are taken by the cluster "
                                   "layout's local tables")
    after = name.last + 1
    if after >= len(tokens) or tokens[after].text != "(":
        raise UnsupportedStatement("only CREATE TABLE name (columns) ENGINE = ... is supported "
                                   "(not ON CLUSTER, AS, CLONE, EMPTY AS or UUID)")
    end_cols = closing(tokens, after)
    columns = [part[0].name for part in split_top(tokens[after + 1:end_cols])
               if part and not part[0].is_word("INDEX", "PROJECTION", "CONSTRAINT", "PRIMARY")]
    engine_at = end_cols + 1
    if not (engine_at < len(tokens) and tokens[engine_at].is_word("ENGINE")):
        raise UnsupportedStatement("ENGINE must follow the column list")
    engine_at += 1
    if engine_at < len(tokens) and tokens[engine_at].text == "=":
        engine_at += 1
    if engine_at >= len(tokens) or tokens[engine_at].kind != "word":
        raise UnsupportedStatement("no engine name after ENGINE")
    clauses: dict[str, list[Token]] = {}
    current: list[Token] = []
    j = engine_at + 1
    if j < len(tokens) and tokens[j].text == "(":
        j = closing(tokens, j) + 1
    for t in tokens[j:]:
        if t.depth == 0 and t.is_word(*_CLAUSES):
            current = clauses.setdefault(t.text.upper(), [])
        elif t.depth == 0 and not clauses:
            raise UnsupportedStatement(f"unexpected {t.text!r} after the engine")
        elif not (current == [] and t.is_word("BY", "KEY") and
                  list(clauses)[-1] in ("PARTITION", "PRIMARY", "ORDER", "SAMPLE")):
            current.append(t)
    return _Parsed(sql, tokens, name.last, name.database, name.table, ine, columns,
                   engine_at, clauses)


def _sorting_key(p: _Parsed) -> list[str]:
    expr = p.clauses.get("ORDER", [])
    if not expr:
        raise UnsupportedStatement("a MergeTree table needs ORDER BY")
    if expr[0].text == "(" and closing(expr, 0) == len(expr) - 1:
        expr = expr[1:-1]
    elif len(expr) == 3 and expr[0].is_word("TUPLE") and expr[1].text == "(":
        return []
    return [text_of(p.sql, part) for part in split_top(expr)]


def sharding_key(columns: Sequence[str], sorting_key: Sequence[str], engine: str) -> str:
    """Visitor key where the table has it, else the sorting (replacing) key; rand() only for
    a plain MergeTree without a key (nothing is replaced there)."""
    if set(VISITOR_KEY) <= set(columns):
        return f"cityHash64({', '.join(VISITOR_KEY)})"
    if sorting_key:
        return f"cityHash64({', '.join(sorting_key)})"
    if engine == "MergeTree":
        return "rand()"
    raise UnsupportedStatement(f"{engine} with an empty sorting key: nothing to shard by")


def _engine_edit(p: _Parsed, path: str, replica: str) -> tuple[int, int, str]:
    """Engine X(args) -> ReplicatedX('path', 'replica', args)."""
    tok = p.tokens[p.engine_at]
    m = _ENGINE.fullmatch(tok.text)
    if m is None or m.group(1).startswith(("Replicated", "Shared")):
        raise UnsupportedStatement(f"no cluster form for engine {tok.text}: only the "
                                   "non-replicated MergeTree family is supported")
    args, end = "", tok.end
    nxt = p.engine_at + 1
    if nxt < len(p.tokens) and p.tokens[nxt].text == "(":
        close = closing(p.tokens, nxt)
        args, end = p.sql[p.tokens[nxt].end:p.tokens[close].start].strip(), p.tokens[close].end
    params = ", ".join(x for x in (quote_string(path), quote_string(replica), args) if x)
    return tok.start, end, f"Replicated{tok.text}({params})"


def _setting_edits(p: _Parsed) -> list[tuple[int, int, str]]:
    edits = []
    for part in split_top(p.clauses.get("SETTINGS", [])):
        if part and part[0].text in _SETTING_RENAMES:
            edits.append((part[0].start, part[0].end, _SETTING_RENAMES[part[0].text]))
    return edits


def render_table(sql: str, cluster: str) -> ClusterTable:
    """The local statement of one CREATE TABLE, and what its Distributed table needs: a
    MergeTree-family table becomes replicated; a Null table (an entry point that only feeds
    materialized views) stays Null on every node."""
    p = _parse(sql)
    on = f" ON CLUSTER {quote_string(cluster)}"
    local = p.table + SUFFIX
    engine = p.tokens[p.engine_at].text
    name_tok = p.tokens[p.name_at]
    edits = [(name_tok.start, name_tok.end, quote_name(local) + on)]
    key = None
    if engine != "Null":
        path = SHARD_PATH.format(database=p.database, table=local)
        edits += [_engine_edit(p, path, "{replica}"), *_setting_edits(p)]
        key = sharding_key(p.columns, _sorting_key(p), engine)
    comment = text_of(sql, p.clauses.get("COMMENT", []))
    replacing = engine in ("ReplacingMergeTree", "CollapsingMergeTree",
                           "VersionedCollapsingMergeTree")
    return ClusterTable(p.database, p.table, p.columns, splice(sql, edits), on, cluster,
                        p.if_not_exists, comment, key, replacing)


def key_columns(key: str) -> set[str]:
    """Column names a sharding key reads (identifiers that are not function names)."""
    tokens = tokenize(key)
    return {t.name for i, t in enumerate(tokens) if t.kind in ("word", "ident")
            and not (i + 1 < len(tokens) and tokens[i + 1].text == "(")}


def render_everywhere(sql: str, cluster: str) -> str:
    """One CREATE TABLE as a table replicated on every node, not sharded (bookkeeping)."""
    p = _parse(sql)
    name_tok = p.tokens[p.name_at]
    path = EVERYWHERE_PATH.format(database=p.database, table=p.table)
    edits = [(name_tok.end, name_tok.end, f" ON CLUSTER {quote_string(cluster)}"),
             _engine_edit(p, path, "{shard}-{replica}"), *_setting_edits(p)]
    return splice(sql, edits)
