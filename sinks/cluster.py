"""The cluster variant of the migrations (CLICKSTREAM_CLICKHOUSE_CLUSTER), rendered from the
shipped single-server SQL, so every migration, including ones written later, has one source.

Per statement:
- CREATE TABLE ... ENGINE = <X>MergeTree: `<table>_local` with Replicated<X>MergeTree on every
  node, and a Distributed table under the original name (sinks/cluster_tables.py), so the
  sink, views, dashboards and analysts keep using the original names.
- CREATE VIEW: ON CLUSTER, reading the Distributed tables (a view naming a local table fails).
- CREATE MATERIALIZED VIEW ... TO: ON CLUSTER, with its target and sources renamed to the
  local tables, so it fires on the shard that receives the rows.
- ALTER TABLE: ON CLUSTER on the local table; column changes also on the Distributed table.
- DROP / TRUNCATE / OPTIMIZE / DELETE: ON CLUSTER, on the local table where there is one.
- CREATE DATABASE / FUNCTION: ON CLUSTER.
- INSERT ... SELECT from one table of the migrations into another that a materialized view
  derives from it (a backfill), or that is sharded alike: shard by shard, each shard from its
  local source into its local target (parallel_distributed_insert_select = 2), so backfilled
  rows sit where the view writes the rows of the same source rows. Through the Distributed
  table they would go by the target's own key: a session still growing across the migration
  would then have its old versions on one shard and its new ones on another, and FINAL
  (per shard) would count it twice. Any other INSERT: unchanged (runs once, through
  Distributed).
Anything else raises ClusterError naming the migration: extend this module, never guess.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import pairwise

from sinks.cluster_sql import (
    Name,
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
from sinks.cluster_tables import (
    SUFFIX,
    ClusterTable,
    UnsupportedStatement,
    key_columns,
    render_everywhere,
    render_table,
)

#: ALTER commands that change columns: applied to the Distributed table too.
_COLUMN_COMMANDS = {("ADD", "COLUMN"), ("DROP", "COLUMN"), ("MODIFY", "COLUMN"),
                    ("RENAME", "COLUMN"), ("COMMENT", "COLUMN"), ("MODIFY", "COMMENT")}
#: ALTER commands on data, indexes and storage: the local tables only.
_LOCAL_COMMANDS = {
    ("ADD", "INDEX"), ("DROP", "INDEX"), ("MATERIALIZE", "INDEX"), ("CLEAR", "INDEX"),
    ("ADD", "PROJECTION"), ("DROP", "PROJECTION"), ("MATERIALIZE", "PROJECTION"),
    ("CLEAR", "PROJECTION"), ("ADD", "CONSTRAINT"), ("DROP", "CONSTRAINT"),
    ("MODIFY", "TTL"), ("REMOVE", "TTL"), ("MATERIALIZE", "TTL"), ("MODIFY", "SETTING"),
    ("RESET", "SETTING"), ("MODIFY", "ORDER"), ("MATERIALIZE", "COLUMN"),
    ("CLEAR", "COLUMN"), ("DELETE", "WHERE"), ("UPDATE",), ("DROP", "PARTITION"),
}
#: Runs an INSERT ... SELECT between two Distributed tables on every shard, local to local.
SHARD_LOCAL = "parallel_distributed_insert_select = 2"


class ClusterError(ValueError):
    """A migration has a statement the cluster rendering cannot make cluster-safe."""


@dataclass
class ClusterRenderer:
    """Renders migrations in version order; remembers which tables have a local twin."""

    cluster: str
    sharded: set[str] = field(default_factory=set)
    keys: dict[str, str] = field(default_factory=dict)  # table -> sharding key
    replacing: set[str] = field(default_factory=set)  # tables whose rows replace by key
    #: Null tables whose Distributed table waits for the materialized view reading them.
    pending: dict[str, ClusterTable] = field(default_factory=dict)
    #: (source, target) of each materialized view: target rows live on the source's shards.
    derived: set[tuple[str, str]] = field(default_factory=set)

    @property
    def on_cluster(self) -> str:
        return f" ON CLUSTER {quote_string(self.cluster)}"

    def render(self, label: str, statements: Sequence[str]) -> list[str]:
        out: list[str] = []
        for n, sql in enumerate(statements, 1):
            try:
                out.extend(self.statement(sql.rstrip().removesuffix(";").rstrip()))
            except (ValueError, IndexError) as exc:  # UnsupportedStatement, SqlSyntaxError
                head = " ".join(sql.split())[:80]
                raise ClusterError(f"migration {label}, statement {n} ({head} ...): {exc}; "
                                   "extend sinks/cluster.py to give it a cluster form") from exc
        if self.pending:
            raise ClusterError(f"migration {label}: Null table(s) {sorted(self.pending)} feed "
                               "no materialized view of the migration, so nothing says how "
                               "to shard them")
        return out

    def statement(self, sql: str) -> list[str]:
        tokens = tokenize(sql)
        if any(a.is_word("ON") and b.is_word("CLUSTER") for a, b in pairwise(tokens)):
            raise UnsupportedStatement("already has ON CLUSTER: write the single-server form")
        lead = _lead(tokens)
        if lead[:2] in (("CREATE", "DATABASE"), ("CREATE", "FUNCTION")):
            return [self._after_name(sql, tokens, 2)]
        if lead[:2] == ("CREATE", "TABLE"):
            return self._table(render_table(sql, self.cluster))
        if lead[:2] == ("CREATE", "VIEW") or lead[:4] == ("CREATE", "OR", "REPLACE", "VIEW"):
            return [self._view(sql, tokens, lead.index("VIEW") + 1)]
        if lead[:3] == ("CREATE", "MATERIALIZED", "VIEW"):
            return self._materialized_view(sql, tokens)
        if lead[:2] == ("ALTER", "TABLE"):
            return self._alter(sql, tokens)
        if lead[:1] == ("DROP",) and lead[1:2] in (("TABLE",), ("VIEW",), ("DICTIONARY",),
                                                    ("DATABASE",), ("FUNCTION",)):
            return self._drop(sql, tokens)
        if lead[:2] in (("TRUNCATE", "TABLE"), ("OPTIMIZE", "TABLE"), ("DELETE", "FROM")):
            return [self._local(sql, tokens, 2, required=lead[0] != "TRUNCATE")]
        if lead[:2] == ("INSERT", "INTO"):
            return [self._insert(sql, tokens)]
        raise UnsupportedStatement(f"{' '.join(lead[:3])} has no known cluster form")

    def _table(self, table: ClusterTable) -> list[str]:
        self.sharded.add(table.table)
        if table.sharding_key is None:
            self.pending[table.table] = table
            return [table.local]
        self.keys[table.table] = table.sharding_key
        if table.replacing:
            self.replacing.add(table.table)
        return [table.local, table.distributed(table.sharding_key)]

    def _feeds(self, sources: set[str], target: str) -> list[str]:
        """Distributed tables of the Null tables a materialized view reads: sharded like its
        target, so rows go where the target's own rows of the same key are."""
        out = []
        key = self.keys[target]
        for name in sorted(sources & set(self.pending)):
            entry = self.pending.pop(name)
            if missing := key_columns(key) - set(entry.columns):
                raise UnsupportedStatement(f"{name} feeds {target} but lacks the columns of "
                                           f"its sharding key {key}: {sorted(missing)}")
            out.append(entry.distributed(key))
        return out

    def _name(self, tokens: list[Token], i: int) -> Name:
        if [t.text.upper() for t in tokens[i:i + 3]] == ["IF", "NOT", "EXISTS"]:
            i += 3
        elif [t.text.upper() for t in tokens[i:i + 2]] == ["IF", "EXISTS"]:
            i += 2
        name = read_name(tokens, i)
        if name is None:
            raise UnsupportedStatement("no name where one was expected")
        return name

    def _after_name(self, sql: str, tokens: list[Token], i: int,
                    rename: str | None = None) -> str:
        """ON CLUSTER after the name at token i (optionally renaming the table)."""
        name = self._name(tokens, i)
        last = tokens[name.last]
        new = quote_name(rename) if rename else last.text
        return splice(sql, [(last.start, last.end, new + self.on_cluster)])

    def _local_names(self, tokens: Sequence[Token]) -> list[str]:
        locals_ = {t + SUFFIX for t in self.sharded}
        return sorted({t.name for t in tokens if t.kind in ("word", "ident")
                       and t.name in locals_})

    def _view(self, sql: str, tokens: list[Token], i: int) -> str:
        if found := self._local_names(tokens):
            raise UnsupportedStatement(f"a view must read the Distributed tables, not {found}")
        name = self._name(tokens, i)
        last = tokens[name.last]
        edits = [(last.end, last.end, self.on_cluster),
                 *((pos, pos, "GLOBAL ") for pos in _global_points(tokens, self.sharded))]
        return splice(sql, edits)

    def _materialized_view(self, sql: str, tokens: list[Token]) -> list[str]:
        name = self._name(tokens, 3)
        rest = tokens[name.last + 1:]
        if not rest or not rest[0].is_word("TO"):
            raise UnsupportedStatement("a materialized view needs TO <table> (a table of the "
                                       "migrations), not an inner ENGINE")
        if any(t.depth == 0 and t.is_word("POPULATE", "REFRESH", "ENGINE") for t in rest):
            raise UnsupportedStatement("POPULATE, REFRESH and ENGINE have no cluster form here")
        target = read_name(rest, 1)
        if target is None or target.table not in self.keys:
            raise UnsupportedStatement("the TO table must be a MergeTree table created by an "
                                       "earlier statement")
        renamed = [t for t in rest if t.kind in ("word", "ident") and t.name in self.sharded
                   and _qualified(tokens, t)]
        sources = {t.name for t in renamed} - {target.table}
        if len(sources) != 1:
            raise UnsupportedStatement("a materialized view must read exactly one table of the "
                                       f"migrations (it reads {sorted(sources)}): a joined "
                                       "table would be read per shard")
        source = next(iter(sources))
        if (target.table in self.replacing and source in self.keys
                and self.keys[source] != self.keys[target.table]):
            raise UnsupportedStatement(
                f"{source} is sharded by {self.keys[source]}, {target.table} by "
                f"{self.keys[target.table]}: rows the view writes would replace each other "
                "on different shards")
        edits = [(t.start, t.end, quote_name(t.name + SUFFIX)) for t in renamed]
        last = tokens[name.last]
        edits.append((last.end, last.end, self.on_cluster))
        self.derived.add((source, target.table))
        return [splice(sql, edits), *self._feeds(sources, target.table)]

    def _insert(self, sql: str, tokens: list[Token]) -> str:
        """A backfill (INSERT ... SELECT from the one table a materialized view derives the
        target from, or from a table sharded alike) runs shard by shard; others unchanged."""
        target = read_name(tokens, 2)
        if target is None or target.table not in self.keys:
            return sql
        at = target.last + 1
        if at < len(tokens) and tokens[at].text == "(":
            at = closing(tokens, at) + 1
        if at >= len(tokens) or not tokens[at].is_word("SELECT"):
            return sql
        sources = {t.name for t in tokens[at:] if t.kind in ("word", "ident")
                   and t.name in self.keys and _qualified(tokens, t)}
        if len(sources) != 1:
            return sql
        source = sources.pop()
        if ((source, target.table) not in self.derived
                and self.keys[source] != self.keys[target.table]):
            return sql
        return splice(sql, [(tokens[at].start, tokens[at].start, f"SETTINGS {SHARD_LOCAL} ")])

    def _alter(self, sql: str, tokens: list[Token]) -> list[str]:
        name = self._name(tokens, 2)
        if name.table not in self.sharded:
            raise UnsupportedStatement(f"ALTER of {name.table}: not a table of the migrations")
        commands = split_top(tokens[name.last + 1:])
        columns = []
        for cmd in commands:
            lead = tuple(t.text.upper() for t in cmd[:2])
            if lead in _COLUMN_COMMANDS:
                columns.append(text_of(sql, cmd))
            elif lead not in _LOCAL_COMMANDS and lead[:1] not in _LOCAL_COMMANDS:
                raise UnsupportedStatement(f"ALTER ... {' '.join(lead)} has no cluster form")
        local = self._after_name(sql, tokens, 2, rename=name.table + SUFFIX)
        if not columns:
            return [local]
        last = tokens[name.last]
        dist = f"{sql[:last.end]}{self.on_cluster} {', '.join(columns)}"
        dropping = any(c.split(None, 1)[0].upper() in ("DROP", "RENAME") for c in columns)
        return [dist, local] if dropping else [local, dist]

    def _drop(self, sql: str, tokens: list[Token]) -> list[str]:
        name = self._name(tokens, 2)
        if tokens[1].is_word("TABLE") and name.table in self.sharded:
            self.sharded.discard(name.table)
            return [self._after_name(sql, tokens, 2),
                    self._after_name(sql, tokens, 2, rename=name.table + SUFFIX)]
        return [self._after_name(sql, tokens, 2)]

    def _local(self, sql: str, tokens: list[Token], i: int, required: bool) -> str:
        name = self._name(tokens, i)
        if name.table in self.sharded:
            return self._after_name(sql, tokens, i, rename=name.table + SUFFIX)
        if required:
            raise UnsupportedStatement(f"{name.table} is not a table of the migrations")
        return self._after_name(sql, tokens, i)


def _lead(tokens: Sequence[Token]) -> tuple[str, ...]:
    return tuple(t.text.upper() for t in tokens[:4] if t.kind == "word")


_JOIN_KINDS = {"LEFT", "RIGHT", "INNER", "FULL", "CROSS", "OUTER", "ANY", "ALL", "SEMI", "ANTI",
               "ASOF", "PASTE"}


def _global_points(tokens: Sequence[Token], sharded: set[str]) -> list[int]:
    """Offsets where a view needs GLOBAL: before each JOIN (not ARRAY JOIN) and each IN
    (SELECT ...) / IN db.table. Without it a JOIN or IN over a Distributed table inside a
    query on a Distributed table is refused (distributed_product_mode = 'deny'); GLOBAL
    computes the right side once and sends it to every shard, right however data is sharded."""
    points = []
    for i, t in enumerate(tokens):
        if t.is_word("JOIN"):
            j = i
            while j > 0 and tokens[j - 1].is_word(*_JOIN_KINDS):
                j -= 1
            if j == 0 or not tokens[j - 1].is_word("ARRAY", "GLOBAL"):
                points.append(tokens[j].start)
        elif t.is_word("IN") and i + 1 < len(tokens) and not tokens[i - 1].is_word("GLOBAL"):
            nxt = tokens[i + 1:i + 3]
            query = nxt[0].text == "(" and len(nxt) > 1 and nxt[1].is_word("SELECT", "WITH")
            table = read_name(tokens, i + 1)
            if query or (table is not None and table.table in sharded):
                j = i - 1 if tokens[i - 1].is_word("NOT") else i
                points.append(tokens[j].start)
    return points


def _qualified(tokens: Sequence[Token], t: Token) -> bool:
    """True when t is the table part of db.table (so a column named like a table stays)."""
    i = tokens.index(t)
    return i >= 2 and tokens[i - 1].text == "."


def render_bookkeeping(statements: Sequence[str], cluster: str) -> list[str]:
    """The schema_migrations DDL for a cluster: one replica set across every node (path
    without {shard}), so whichever node `clickstream migrate` or a sink reaches sees the same
    applied versions; not sharded, no Distributed table."""
    out = []
    for sql in statements:
        tokens = tokenize(sql)
        if _lead(tokens)[:2] == ("CREATE", "TABLE"):
            out.append(render_everywhere(sql, cluster))
        else:
            out.append(ClusterRenderer(cluster).statement(sql)[0])
    return out
