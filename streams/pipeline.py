"""Ingestion as an ordered list of named steps (the Plausible way).

Each step looks at one event context and may reject it with a named reason (`Reject`).
A batch runs step by step (all events through step 1, then step 2, ...) so each step is
timed once per batch, not once per event, and the hot loop stays small.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from schemas.event_view import EventView


class Reject(Exception):
    """Raised by a step: this event is not valid; the message is the reason."""


class Ctx:
    """One event on its way through the steps."""

    __slots__ = ("envelope", "event", "index", "key", "offset", "partition", "raw",
                 "reject_reason", "reject_step", "row", "state")

    def __init__(self, raw: bytes, key: bytes | None = None, partition: int = -1,
                 offset: int = -1, index: int = 0) -> None:
        self.raw = raw
        self.index = index
        self.key = key
        self.partition = partition
        self.offset = offset
        self.envelope: dict[str, Any] = {}
        self.event: EventView | None = None
        self.row: dict[str, Any] = {}
        self.state: Any = None
        self.reject_step = ""
        self.reject_reason = ""

    @property
    def ok(self) -> bool:
        return not self.reject_step


StepFn = Callable[[Ctx], None]


@dataclass(frozen=True)
class Step:
    name: str
    run: StepFn


@dataclass
class Pipeline:
    """Runs steps over batches; keeps per-step time and reject counts."""

    steps: Sequence[Step]
    seconds: dict[str, float] = field(default_factory=dict)
    rejected: dict[tuple[str, str], int] = field(default_factory=dict)
    on_step_done: Callable[[str, float, int], None] | None = None

    def run(self, batch: Iterable[Ctx]) -> list[Ctx]:
        ctxs = list(batch)
        live = ctxs
        for step in self.steps:
            t0 = time.perf_counter()
            fn = step.run
            rejected: list[Ctx] = []
            for ctx in live:
                try:
                    fn(ctx)
                except Reject as exc:
                    ctx.reject_step = step.name
                    ctx.reject_reason = str(exc) or step.name
                    rejected.append(ctx)
            elapsed = time.perf_counter() - t0
            self.seconds[step.name] = self.seconds.get(step.name, 0.0) + elapsed
            if self.on_step_done:
                self.on_step_done(step.name, elapsed, len(live))
            if rejected:
                for c in rejected:
                    reason_key = (step.name, _reason_class(c.reject_reason))
                    self.rejected[reason_key] = self.rejected.get(reason_key, 0) + 1
                live = [c for c in live if c.ok]
        return ctxs


def _reason_class(reason: str) -> str:
    """Low-cardinality label for a reason: its text up to the first colon."""
    return reason.split(":", 1)[0][:40]
