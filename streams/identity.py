"""Cross-device attribution: the user-keyed agent.

A visitor linked to a user id (streams/sessionize.py) sends its touchpoints and conversions
to the internal `identity` topic, keyed by site + user, so every device of one user meets in
one partition. Here they are merged into the user's touchpoint history and conversions are
attributed against it. Same write discipline as the visitor agent: outputs first, state after
Kafka acknowledged them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import faust
import orjson

from streams.attribution.stream import Attributor
from streams.state import VisitorStateTable


def identity_key(site_id: str, user: str) -> bytes:
    return f"{site_id}|{user}".encode()


def fold_identity_records(attributor: Attributor, table: VisitorStateTable,
                          records: Sequence[tuple[int, dict[str, Any]]]
                          ) -> dict[bytes, tuple[int, dict[str, Any]]]:
    """Apply (partition, record) pairs to user states; returns the touched states."""
    touched: dict[bytes, tuple[int, dict[str, Any]]] = {}
    for partition, rec in records:
        key = identity_key(rec["site_id"], rec["user"])
        entry = touched.get(key)
        state = entry[1] if entry else (table.get(key, partition) or {"n": 0})
        state["n"] = state.get("n", 0) + 1
        if rec["kind"] == "touch" and rec["tp"]:
            attributor.touch(state, rec["tp"], rec["site_id"])
        elif rec["kind"] == "conversion":
            attributor.convert(state, rec["row"], rec["ts"])
        touched[key] = (partition, state)
    return touched


def register_identity_agent(app: faust.App, topic: faust.TopicT, attributor: Attributor,
                            partitions: int, outputs: dict[str, str],
                            batch_size: int, batch_seconds: float) -> VisitorStateTable:
    """outputs: {"conversions": topic name, "attribution": topic name}."""
    table = VisitorStateTable(app, "user-state", partitions)

    @app.agent(topic, name="identity")
    async def identity(stream: faust.StreamT) -> None:
        async for batch in stream.take_events(batch_size, within=batch_seconds):
            attributor.begin_batch()
            records = [(ev.message.partition, orjson.loads(ev.value)) for ev in batch]
            touched = fold_identity_records(attributor, table, records)
            send = app.producer.send
            deliveries = []
            for rows, name in ((attributor.conversions, outputs["conversions"]),
                               (attributor.credits, outputs["attribution"])):
                for row in rows:
                    deliveries.append(await send(name, row["conversion_id"].encode(),
                                                 orjson.dumps(row), None, None, None))
            await asyncio.gather(*deliveries)
            await table.put_many((k, p, s) for k, (p, s) in touched.items())

    return table
