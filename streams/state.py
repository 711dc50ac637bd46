"""Per-visitor state in a Faust table, written once per visitor per batch.

Faust normally finds the changelog partition from "the current event"; in a batch there is
no single current event, so we write the store and the changelog record ourselves, to the
partition the visitor's events came from (the raw topic is keyed by site + visitor, so a
visitor always lives in one partition, and the changelog partition matches it).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from typing import Any

import faust
import orjson
from faust.types import TP

from streams.batch_send import BatchSender
from streams.stores import table_options


def put_in_partition(store: Any, key: bytes, value: bytes, partition: int) -> bytes:
    """store[key] = value, in `partition`'s part of the store. The memory store is one dict;
    the RocksDB store keeps one database per partition and picks it from the current event,
    which a batch does not have, so we give it the partition (faust's own _set does the same
    two steps: the key index, then a put into that partition's database). Returns the value
    as stored."""
    db_for = getattr(store, "_db_for_partition", None)
    if db_for is None:
        # a copy of exactly its size: orjson's bytes keep an 8 kB buffer, ~10x a state
        stored = store[key] = bytes(memoryview(value))
        # what the memory store learns of keys restored from the changelog: it drops
        # revoked partitions' keys by it, and the state sweep finds a key's partition
        store._key_partition[key] = partition
        return stored
    encoded = store._encode_key(key)
    store._key_index[encoded] = partition
    value = bytes(memoryview(value))  # exact size, as above (the caller may keep it)
    db_for(partition).put(encoded, store._encode_value(value))
    return value


def delete_in_partition(store: Any, key: bytes, partition: int) -> None:
    """del store[key] in `partition`'s part of the store (see put_in_partition)."""
    db_for = getattr(store, "_db_for_partition", None)
    if db_for is None:
        store.pop(key, None)
        store._key_partition.pop(key, None)
        return
    encoded = store._encode_key(key)
    store._key_index.pop(encoded, None)
    db_for(partition).delete(encoded)


def remember_persisted(store: Any) -> Callable[[asyncio.Future[Any]], None]:
    """A done-callback for a changelog send: records the offset Kafka gave it in the store
    (RocksDB stores skip what is already persisted on recovery)."""
    def done(fut: asyncio.Future[Any]) -> None:
        if not fut.cancelled() and fut.exception() is None:
            meta = fut.result()
            store.set_persisted_offset(TP(meta.topic, meta.partition), meta.offset)
    return done


def get_in_partition(store: Any, key: bytes, partition: int | None) -> bytes | None:
    """store.get(key), looked up in `partition` on a RocksDB store (it would otherwise take
    the partition of whatever event is current, or search every partition's database)."""
    db_for = getattr(store, "_db_for_partition", None)
    if db_for is None or partition is None:
        return store.get(key)  # type: ignore[no-any-return]
    raw = db_for(partition).get(store._encode_key(key))
    return None if raw is None else store._decode_value(raw)  # type: ignore[no-any-return]


class PartitionWalk:
    """Walks one partition's (key, value) pairs a slice at a time, between batches: RocksDB
    seeks past the last key for every slice (an open iterator would pin memtables and
    files); the memory store goes over the keys the partition had when the walk began.
    Nothing but the position is held between slices."""

    def __init__(self, store: Any, partition: int) -> None:
        self.store, self.partition = store, partition
        self._after: bytes | None = None
        self._keys: list[bytes] | None = None
        self._at = 0

    def next(self, size: int) -> list[tuple[bytes, bytes]]:
        """The next `size` pairs at most; [] when the walk is over."""
        store = self.store
        db_for = getattr(store, "_db_for_partition", None)
        if db_for is None:
            if self._keys is None:
                self._keys = [k for k, p in store._key_partition.items() if p == self.partition]
            keys = self._keys[self._at:self._at + size]
            self._at += size
            got = ((k, store.data.get(k)) for k in keys)
            return [(k, v) for k, v in got if v is not None]
        db, after, skip = db_for(self.partition), self._after, store.offset_key
        chunk = []
        for key, raw in db.items(from_key=after) if after is not None else db.items():
            if key in (after, skip):
                continue
            chunk.append((key, raw))
            if len(chunk) >= size:
                break
        if chunk:
            self._after = chunk[-1][0]
        return [(store._decode_key(k), store._decode_value(v)) for k, v in chunk]


class StateCache:
    """Decoded states next to the store, so that a visitor seen again soon is not decoded
    again (on a busy site nearly every event of a batch is a different visitor's, and the
    decoding and the freeing of the decoded objects were most of a state read).

    An entry is (the stored bytes it decodes, the state, its partition). It is only used
    while the store still holds those very bytes (the same object in the memory store, equal
    bytes in RocksDB), so a write from anywhere else (changelog recovery, a rebalance, the
    sweep) makes it unusable instead of wrong. A state taken is lent, out of the cache: its
    reader mutates it, and only `keep` (after the new bytes are stored) brings it back, so a
    batch that fails before its commit leaves nothing changed behind. Least recently kept
    entries go first beyond `size`."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._entries: dict[bytes, tuple[bytes, dict[str, Any], int]] = {}
        self._lent: set[bytes] = set()
        self.hits = self.misses = 0

    def take(self, key: bytes, raw: bytes) -> dict[str, Any]:
        """The state `raw` (the store's value of `key`) decodes to, lent to the caller."""
        entry = self._entries.pop(key, None)
        if len(self._lent) > 2 * self.size + 10_000:  # batches that failed before a commit
            self._lent.clear()
        if self.size:
            self._lent.add(key)
        if entry is not None and (entry[0] is raw or entry[0] == raw):
            self.hits += 1
            return entry[1]
        self.misses += 1
        return orjson.loads(raw)  # type: ignore[no-any-return]

    def lend_new(self, key: bytes) -> None:
        """A state the reader builds itself (the key had none) may be kept too."""
        self._entries.pop(key, None)
        if self.size:
            self._lent.add(key)

    def keep(self, key: bytes, raw: bytes | None, state: dict[str, Any] | None,
             partition: int) -> None:
        """`key` was written as `raw` (None: deleted); cache `state` if it was lent."""
        entries = self._entries
        entries.pop(key, None)
        if raw is None or state is None or key not in self._lent:
            return
        self._lent.discard(key)
        entries[key] = (raw, state, partition)
        if len(entries) > self.size:
            del entries[next(iter(entries))]

    def drop_partitions(self, partitions: set[int]) -> None:
        """Forget the entries of these partitions (revoked or newly assigned)."""
        self._entries = {k: e for k, e in self._entries.items() if e[2] not in partitions}

    def clear(self) -> None:
        self._entries.clear()
        self._lent.clear()

    def __len__(self) -> int:
        return len(self._entries)


#: decoded visitor states kept per worker (see StateCache): a state is ~3 kB as objects
#: with one session (~15 kB with eight), so ~30 MB (at most ~150 MB); a busy site's
#: visitors of the last minutes fit, and each one's next event skips the decoding
#: (the worker's own size is CLICKSTREAM_WORKER_STATE_CACHE)
STATE_CACHE_SIZE = 10_000


class VisitorStateTable:
    """Visitor key (site|visitor) -> JSON state (see streams/sessionize.py)."""

    def __init__(self, app: faust.App, name: str, partitions: int,
                 sender: BatchSender | None = None, cache_size: int = STATE_CACHE_SIZE
                 ) -> None:
        self.table = app.Table(name, default=None, key_type=bytes,
                               value_type=bytes, partitions=partitions,
                               options=table_options(),
                               help="Per-visitor state: sessions, recent event ids, counts.")
        self.sender = sender or BatchSender(app)
        self.cache = StateCache(cache_size)
        self._forget_on_rebalance()

    def _forget_on_rebalance(self) -> None:
        """Drop cached states of partitions that move, and all of them after a recovery
        (the bytes check already refuses stale entries: this frees their memory)."""
        table, cache = self.table, self.cache
        rebalance, recovered = table.on_rebalance, table.on_recovery_completed

        async def on_rebalance(assigned: set[TP], revoked: set[TP], newly_assigned: set[TP],
                               generation_id: int = 0) -> None:
            cache.drop_partitions({tp.partition for tp in (*revoked, *newly_assigned)})
            await rebalance(assigned, revoked, newly_assigned, generation_id)

        async def on_recovery_completed(active: set[TP], standby: set[TP]) -> None:
            cache.clear()
            await recovered(active, standby)

        table.on_rebalance = on_rebalance
        table.on_recovery_completed = on_recovery_completed

    def get(self, key: bytes, partition: int | None = None) -> dict[str, Any] | None:
        """The state of `key`; pass the partition its events came from when known. The
        state is the caller's to change and to write back with `put_many` (see StateCache)."""
        raw = get_in_partition(self.table.data, key, partition)
        if not raw:
            self.cache.lend_new(key)
            return None
        return self.cache.take(key, raw)

    async def put_many(self, items: Iterable[tuple[bytes, int, dict[str, Any] | None]]
                       ) -> int:
        """Store states (None: delete) locally and write their changelog records (None: a
        tombstone) as whole batches per partition (Faust's own path sends one record at a
        time, and its 100-message send buffer would warn on every batch). Returns how many
        were written; Faust flushes the producer before it commits offsets, so they are in
        Kafka before the input is marked done."""
        topic = self.table.changelog_topic.get_topic_name()
        store = self.table.data
        keep = self.cache.keep
        by_partition: dict[int, list[tuple[bytes, bytes | None]]] = {}
        for key, partition, state in items:
            if state is None:
                delete_in_partition(store, key, partition)
                value = None
                keep(key, None, None, partition)
            else:
                # what the store keeps goes out too: orjson's own output (a buffer of
                # several kB) is freed at once and reused, instead of a thousand of them
                # held until the send (fresh memory for each: twice the encoding's cost)
                value = put_in_partition(store, key, orjson.dumps(state), partition)
                keep(key, value, state, partition)
            by_partition.setdefault(partition, []).append((key, value))
        persisted = remember_persisted(store)
        for partition, records in by_partition.items():
            for fut in await self.sender.send(topic, partition, records):
                fut.add_done_callback(persisted)
        return sum(map(len, by_partition.values()))

    def summary(self) -> dict[str, int]:
        """Visitors known and events counted (for `clickstream status` and tests)."""
        visitors = events = 0
        for raw in list(self.table.data.values()):
            if raw:
                visitors += 1
                events += int(orjson.loads(raw)["n"])
        return {"visitors": visitors, "events": events}
