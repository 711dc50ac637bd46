"""One error type for every request-level rejection, mapped to an HTTP status."""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web


class ApiError(Exception):
    """A request rejected as a whole: HTTP status, a stable reason code and a message.

    `events` is how many events the request carried when that is known (for the
    events-rejected metric); `retry_after` adds a Retry-After header (429, 503)."""

    def __init__(self, status: int, reason: str, message: str, *, events: int = 0,
                 retry_after: int | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason
        self.message = message
        self.events = events
        self.retry_after = retry_after

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after)} if self.retry_after else {}


def json_response(status: int, body: dict[str, Any],
                  headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(status=status, body=orjson.dumps(body),
                        content_type="application/json", headers=headers)


def error_response(exc: ApiError, headers: dict[str, str] | None = None) -> web.Response:
    return json_response(exc.status, {"error": exc.reason, "message": exc.message},
                         {**exc.headers(), **(headers or {})})
