"""A small SQL lexer for the cluster rendering of migrations (sinks/cluster.py).

Just enough of ClickHouse's lexical rules to find statement parts safely: string literals
('...' with backslash or doubled-quote escapes), quoted identifiers (`...`, "..."), comments
(--, #!, /* */), words, numbers and punctuation, each token with its offsets in the text and
its parenthesis depth. Edits are then spliced into the original text, so the rendered SQL
keeps the migration's own layout.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

_TOKEN = re.compile(
    r"""(?P<space>\s+|--[^\n]*|\#![^\n]*|/\*.*?\*/)
      |(?P<string>'(?:[^'\\]|\\.|'')*')
      |(?P<ident>`(?:[^`\\]|\\.|``)*`|"(?:[^"\\]|\\.|"")*")
      |(?P<word>[A-Za-z_][A-Za-z0-9_]*)
      |(?P<number>[0-9][0-9A-Za-z_.]*)
      |(?P<punct>.)""",
    re.S | re.X,
)


class SqlSyntaxError(ValueError):
    """The text is not lexically valid SQL (unclosed quote or parenthesis)."""


@dataclass(frozen=True)
class Token:
    kind: str  # word, ident, string, number or punct
    text: str
    start: int
    end: int
    depth: int  # open parentheses before this token

    def is_word(self, *words: str) -> bool:
        return self.kind == "word" and self.text.upper() in words

    @property
    def name(self) -> str:
        """The identifier this token spells (quotes removed)."""
        if self.kind == "ident":
            return self.text[1:-1].replace(self.text[0] * 2, self.text[0])
        return self.text


def tokenize(sql: str) -> list[Token]:
    tokens: list[Token] = []
    depth = pos = 0
    while pos < len(sql):
        m = _TOKEN.match(sql, pos)
        if m is None or (m.lastgroup == "punct" and m.group() in "'`\""):
            raise SqlSyntaxError(f"unclosed quote at offset {pos}")
        kind, text, pos = m.lastgroup or "", m.group(), m.end()
        if kind == "space":
            continue
        if text == ")":
            depth -= 1
            if depth < 0:
                raise SqlSyntaxError(f"unbalanced ) at offset {m.start()}")
        tokens.append(Token(kind, text, m.start(), m.end(), depth))
        if text == "(":
            depth += 1
    if depth:
        raise SqlSyntaxError("unclosed parenthesis")
    return tokens


def words(tokens: Sequence[Token], start: int, count: int) -> tuple[str, ...]:
    """Up to `count` leading tokens from `start`, upper-cased (keywords)."""
    return tuple(t.text.upper() for t in tokens[start:start + count])


def closing(tokens: Sequence[Token], i: int) -> int:
    """Index of the ) matching the ( at index i."""
    depth = tokens[i].depth
    for j in range(i + 1, len(tokens)):
        if tokens[j].text == ")" and tokens[j].depth == depth:
            return j
    raise SqlSyntaxError("unclosed parenthesis")


def split_top(tokens: Sequence[Token], sep: str = ",") -> list[list[Token]]:
    """Split on `sep` at the depth of the first token (not inside parentheses)."""
    if not tokens:
        return []
    depth = tokens[0].depth
    parts: list[list[Token]] = [[]]
    for t in tokens:
        if t.text == sep and t.kind == "punct" and t.depth == depth:
            parts.append([])
        else:
            parts[-1].append(t)
    return parts


def text_of(sql: str, tokens: Sequence[Token]) -> str:
    return sql[tokens[0].start:tokens[-1].end] if tokens else ""


@dataclass(frozen=True)
class Name:
    """A table name as written: [database.]table, and the token span it covers."""

    database: str | None
    table: str
    first: int  # token index of its first token
    last: int  # token index of its last token


def read_name(tokens: Sequence[Token], i: int) -> Name | None:
    """The (possibly qualified) name starting at token i, if one does."""
    if i >= len(tokens) or tokens[i].kind not in ("word", "ident"):
        return None
    if (i + 2 < len(tokens) and tokens[i + 1].text == "."
            and tokens[i + 2].kind in ("word", "ident")):
        return Name(tokens[i].name, tokens[i + 2].name, i, i + 2)
    return Name(None, tokens[i].name, i, i)


def names_in(tokens: Sequence[Token]) -> Iterable[Name]:
    """Every qualified name db.table in a token run (table references in a query)."""
    i = 0
    while i < len(tokens):
        name = read_name(tokens, i)
        if name and name.database is not None and (i == 0 or tokens[i - 1].text != "."):
            yield name
            i = name.last + 1
        else:
            i += 1


def quote_name(name: str) -> str:
    """An identifier as SQL: bare when it can be, else in backticks."""
    if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
        return name
    return "`" + name.replace("\\", "\\\\").replace("`", "\\`") + "`"


def quote_string(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def splice(sql: str, edits: Iterable[tuple[int, int, str]]) -> str:
    """Replace [start, end) ranges of sql; ranges must not overlap."""
    out, pos = [], 0
    for start, end, new in sorted(edits):
        if start < pos:
            raise ValueError("overlapping edits")
        out += [sql[pos:start], new]
        pos = end
    return "".join(out) + sql[pos:]
