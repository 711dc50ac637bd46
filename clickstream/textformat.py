"""Client-side text output for query results (server backend and the CLI)."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from typing import Any

import orjson


def _cell(value: Any) -> str:
    if value is None:
        return "\\N"
    if isinstance(value, dict | list):
        return orjson.dumps(value, default=str).decode()
    return str(value)


def format_rows(names: Sequence[str], rows: Sequence[Sequence[Any]], fmt: str) -> str:
    """Render rows in one of the ClickHouse-named text formats the CLI offers."""
    if fmt.startswith("TabSeparated"):
        lines = ["\t".join(names)] if fmt.endswith("WithNames") else []
        lines += ["\t".join(_cell(v).replace("\t", "\\t").replace("\n", "\\n") for v in r)
                  for r in rows]
        return "\n".join(lines) + ("\n" if lines else "")
    if fmt.startswith("CSV"):
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        if fmt.endswith("WithNames"):
            writer.writerow(names)
        writer.writerows([[_cell(v) for v in r] for r in rows])
        return buf.getvalue()
    if fmt == "JSONEachRow":
        return "".join(
            orjson.dumps(dict(zip(names, r, strict=True)), default=str).decode() + "\n"
            for r in rows
        )
    if fmt.startswith("Pretty"):
        widths = [max([len(n)] + [len(_cell(r[i])) for r in rows]) for i, n in enumerate(names)]
        def line(cells: Sequence[str]) -> str:
            return "│ " + " │ ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)) + " │"
        out = [line(names), "├" + "┼".join("─" * (w + 2) for w in widths) + "┤"]
        out += [line([_cell(v) for v in r]) for r in rows]
        return "\n".join(out) + "\n"
    raise ValueError(f"unknown format {fmt}")
