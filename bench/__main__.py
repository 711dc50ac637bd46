"""`python -m bench` (or `make bench`): run every benchmark, print figures, write results."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PY = [sys.executable, "-m"]
BENCHMARKS = [
    ("tracker size", ["node", "bench/tracker_size.mjs"]),
    ("collector", [*PY, "bench.collector_bench"]),
    ("stream worker", [*PY, "bench.worker_bench"]),
    ("stream worker, busy site's shape (one event per visitor per batch)",
     [*PY, "bench.worker_shape"]),
    ("stream worker memory", [*PY, "bench.worker_memory"]),
    ("attribution", [*PY, "bench.attribution_bench"]),
    ("store: chDB writes, dashboard queries over 10M events", [*PY, "bench.store_bench"]),
    ("traffic windows: event -> live view", [*PY, "bench.traffic_bench"]),
    ("end to end", [*PY, "bench.e2e_bench"]),
    ("side by side: ours, Faust tutorial, Quix Streams", [*PY, "bench.compare_bench"]),
    ("soak (30 min)", [*PY, "bench.soak_bench"]),
]


def main() -> None:
    failed = []
    for name, cmd in BENCHMARKS:
        module = cmd[-1].replace(".", "/") + ".py" if cmd[0] == sys.executable else cmd[-1]
        if not (ROOT / module).exists():
            print(f"== {name}: not present, skipped")
            continue
        print(f"== {name}: {' '.join(cmd[-1:])}", flush=True)
        if subprocess.run(cmd, cwd=ROOT).returncode != 0:
            failed.append(name)
    if failed:
        sys.exit(f"failed: {', '.join(failed)}")


if __name__ == "__main__":
    main()
