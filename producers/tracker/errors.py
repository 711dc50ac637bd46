"""The one error type of the Python tracker."""

from __future__ import annotations


class TrackerError(ValueError):
    """A call that cannot become a valid contract-v1 event, or a misconfigured transport.

    `fields` names the offending fields (e.g. ``("props.plan",)``) when known.
    """

    def __init__(self, message: str, fields: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.fields = fields
