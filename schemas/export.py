"""`python -m schemas.export`: write the committed JSON Schema of the event contract."""

from __future__ import annotations

from pathlib import Path

import orjson

from schemas.event import json_schema

SCHEMA_FILE = Path(__file__).resolve().parent / "event-v1.schema.json"


def render() -> bytes:
    return orjson.dumps(json_schema(), option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n"


def main() -> None:
    SCHEMA_FILE.write_bytes(render())
    print(f"wrote {SCHEMA_FILE}")


if __name__ == "__main__":
    main()
