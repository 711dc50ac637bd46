"""A batch of items -> records (raw events and dead letters) and per-event errors.

Site rule (with a site registry): an event for an unknown site, or for a site that does not
allow the request's Origin, is dead-lettered (unknown_site / origin_not_allowed) while the
rest of the batch goes on; when *no* event of the batch belongs to a site that accepts it,
the whole request is refused with 403 instead (nothing is written).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from producers.collector.errors import ApiError
from producers.collector.records import Record, RecordMaker
from producers.collector.sites import SiteRegistry
from producers.collector.validation import event_problem


@dataclass
class Outcome:
    records: list[Record] = field(default_factory=list)
    accepted: int = 0
    errors: list[dict[str, Any]] = field(default_factory=list)  # index, code, reason

    @property
    def rejected(self) -> int:
        return len(self.errors)


def _site_problem(registry: SiteRegistry, item: Any, origin: str | None) -> tuple[str, str]:
    """('', '') when the item's site accepts it (or it has no usable site_id: validation
    then names the problem), else (code, reason)."""
    site = item.get("site_id") if isinstance(item, dict) else None
    if not isinstance(site, str):
        return "", ""
    if not registry.known(site):
        return "unknown_site", f"unknown_site: site {site[:64]!r} is not registered"
    if not registry.origin_allowed(site, origin):
        return ("origin_not_allowed",
                f"origin_not_allowed: origin {(origin or '')[:200]!r} may not send events "
                f"for site {site!r}")
    return "", ""


def ingest(items: list[Any], registry: SiteRegistry, origin: str | None,
           maker: RecordMaker) -> Outcome:
    out = Outcome()
    valid: list[dict[str, Any]] = []
    if registry.open:  # the hot path: no site rules
        for index, item in enumerate(items):
            problem = event_problem(item)
            if problem is None:
                valid.append(item)
            else:
                out.records.append(maker.dead(item, problem, index))
                out.errors.append({"index": index, "code": "invalid_event", "reason": problem})
        return _with_raws(out, valid, maker)
    verdicts: list[tuple[str, str]] = []
    site_refused = 0
    for item in items:
        code, reason = _site_problem(registry, item, origin)
        if code:
            site_refused += 1
        else:
            problem = event_problem(item)
            if problem is not None:
                code, reason = "invalid_event", problem
        verdicts.append((code, reason))
    if site_refused and not any(
            code in ("", "invalid_event") and _has_site(item)
            for item, (code, _) in zip(items, verdicts, strict=True)):
        codes = {v[0] for v in verdicts}
        code = "unknown_site" if "unknown_site" in codes else "origin_not_allowed"
        raise ApiError(403, code, next(v[1] for v in verdicts if v[0] == code),
                       events=len(items))
    for index, (item, (code, reason)) in enumerate(zip(items, verdicts, strict=True)):
        if code:
            out.records.append(maker.dead(item, reason, index))
            out.errors.append({"index": index, "code": code, "reason": reason})
        else:
            valid.append(item)
    return _with_raws(out, valid, maker)


def _with_raws(out: Outcome, valid: list[dict[str, Any]], maker: RecordMaker) -> Outcome:
    if valid:
        out.records += maker.raws(valid)
        out.accepted = len(valid)
    return out


def _has_site(item: Any) -> bool:
    return isinstance(item, dict) and isinstance(item.get("site_id"), str)
