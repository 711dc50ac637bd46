"""What a transport offers the tracker, and the flush-at-exit hook they share."""

from __future__ import annotations

import atexit
import logging
import weakref
from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

from producers.tracker.stats import TransportStats

log = logging.getLogger("clickstream.tracker")


@runtime_checkable
class Transport(Protocol):
    def send(self, event: dict[str, Any], *, ip: str | None = None,
             user_agent: str | None = None) -> None:
        """Queue one validated event; never blocks on the network."""

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until everything queued so far is delivered or dropped; False on timeout."""

    def close(self, timeout: float | None = None) -> None:
        """Flush, then release the connection; later sends are dropped."""

    @property
    def stats(self) -> TransportStats: ...


class ExitHook:
    """Runs `method(timeout)` of an object at interpreter exit, unless the object is gone or
    the hook was cancelled. Holds only a weak reference, so it keeps nothing alive."""

    def __init__(self, obj: object, method: str, timeout: float) -> None:
        self._ref = weakref.ref(obj)
        self._method = method
        self._timeout = timeout
        self._callback: Callable[[], None] = self._run
        atexit.register(self._callback)

    def _run(self) -> None:
        obj = self._ref()
        if obj is None:
            return
        try:
            getattr(obj, self._method)(self._timeout)
        except Exception:  # at exit there is nobody left to raise to
            log.exception("clickstream tracker: flush at exit failed")

    def cancel(self) -> None:
        atexit.unregister(self._callback)
