"""What `clickstream up` is running, written to $CLICKSTREAM_HOME/run/stack.json.

Other commands (`sql`, `status`, `migrate`) read it to reach the running stack instead of
opening the chDB directory a second time.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import orjson


def state_path(home: Path) -> Path:
    return home / "run" / "stack.json"


def write_state(home: Path, state: dict[str, Any]) -> None:
    path = state_path(home)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(orjson.dumps(state, option=orjson.OPT_INDENT_2))
    tmp.replace(path)


def clear_state(home: Path) -> None:
    state_path(home).unlink(missing_ok=True)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def running_state(home: Path) -> dict[str, Any] | None:
    """The state of a live `clickstream up` for this home, or None (stale files ignored)."""
    path = state_path(home)
    try:
        state = orjson.loads(path.read_bytes())
    except (FileNotFoundError, orjson.JSONDecodeError):
        return None
    if not pid_alive(int(state.get("pid", -1))):
        return None
    return state
