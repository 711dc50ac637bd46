"""RocksDB sizes for the worker's tables.

Faust sizes every RocksDB database for a host of its own: 64 MB memtables, up to three of
them, and a 2 GB block cache each; and every partition of every table is a database of
its own (4 partitions x 3 tables here). Memtables fill with every state write until they
are flushed, so a worker's RSS grew by ~28 MB per 100k events until they were full
(bench/worker_memory.py). The state is written once per visitor per batch and read back
when the visitor returns, so small memtables and caches cost little speed.
"""

from __future__ import annotations

MB = 1 << 20


def table_options() -> dict[str, int]:
    """Options for app.Table (a fresh dict: Faust's RocksDB store pops keys out of it);
    other stores ignore them."""
    return {"write_buffer_size": 4 * MB, "max_write_buffer_number": 2,
            "block_cache_size": 4 * MB}
