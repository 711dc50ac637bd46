"""The Tracker: what a backend calls. Builds contract-v1 events and hands them to a transport."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from producers.tracker.base import Transport
from producers.tracker.build import Amount, Timestamp, build_event, check_site_id, revenue_dict
from producers.tracker.errors import TrackerError
from producers.tracker.stats import TransportStats

Props = Mapping[str, str | bool | int | float]


class Tracker:
    """Tracks events of one site. Every method validates the event with the contract's own
    model (a bad call raises `TrackerError`, a ValueError naming the field, and sends nothing),
    queues it on the transport and returns its event_id.

    `anonymous_id` / `user_id` given here are defaults for every call; per-call values win.
    A tracker keeps no other state, so one instance can serve many users and threads.
    `ip` / `user_agent` per call reach the pipeline with KafkaTransport only.
    """

    def __init__(self, site_id: str, *, transport: Transport, anonymous_id: str | None = None,
                 user_id: str | None = None) -> None:
        self.site_id = check_site_id(site_id)
        self.transport = transport
        self.anonymous_id = anonymous_id
        self.user_id = user_id

    def pageview(self, url: str, *, referrer: str | None = None, title: str | None = None,
                 anonymous_id: str | None = None, user_id: str | None = None,
                 props: Props | None = None, ts: Timestamp | None = None,
                 screen: str | None = None, lang: str | None = None, ip: str | None = None,
                 user_agent: str | None = None) -> str:
        return self._track("pageview", ts=ts, props=props, url=url, referrer=referrer,
                           title=title, anonymous_id=anonymous_id, user_id=user_id,
                           screen=screen, lang=lang, ip=ip, user_agent=user_agent)

    def event(self, name: str, props: Props | None = None, *, url: str | None = None,
              anonymous_id: str | None = None, user_id: str | None = None,
              ts: Timestamp | None = None, ip: str | None = None,
              user_agent: str | None = None) -> str:
        return self._track("event", ts=ts, props=props, name=name, url=url,
                           anonymous_id=anonymous_id, user_id=user_id, ip=ip,
                           user_agent=user_agent)

    def conversion(self, name: str, revenue: Amount | None = None, currency: str | None = None,
                   props: Props | None = None, *, url: str | None = None,
                   anonymous_id: str | None = None, user_id: str | None = None,
                   ts: Timestamp | None = None, ip: str | None = None,
                   user_agent: str | None = None) -> str:
        """A goal reached, e.g. purchase; `revenue` needs `currency` (ISO 4217, any case)."""
        if revenue is None and currency is not None:
            raise TrackerError("currency given without revenue", ("revenue",))
        money = None if revenue is None else revenue_dict(revenue, currency)
        return self._track("conversion", ts=ts, props=props, name=name, url=url,
                           revenue=money, anonymous_id=anonymous_id, user_id=user_id, ip=ip,
                           user_agent=user_agent)

    def identify(self, user_id: str, *, anonymous_id: str | None = None,
                 props: Props | None = None, ts: Timestamp | None = None,
                 ip: str | None = None, user_agent: str | None = None) -> str:
        """Links the visitor (anonymous_id) to the site's own user id."""
        return self._track("identify", ts=ts, props=props, user_id=user_id,
                           anonymous_id=anonymous_id, ip=ip, user_agent=user_agent)

    def flush(self, timeout: float | None = 10.0) -> bool:
        """Wait until everything tracked so far is delivered or dropped; False on timeout."""
        return self.transport.flush(timeout)

    def close(self, timeout: float | None = 10.0) -> None:
        self.transport.close(timeout)

    @property
    def stats(self) -> TransportStats:
        return self.transport.stats

    def __enter__(self) -> Tracker:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def _track(self, type_: str, *, ip: str | None, user_agent: str | None,
               anonymous_id: str | None, user_id: str | None, **fields: Any) -> str:
        event = build_event(type_, self.site_id,
                            anonymous_id=anonymous_id or self.anonymous_id,
                            user_id=user_id or self.user_id, **fields)
        self.transport.send(event, ip=ip, user_agent=user_agent)
        return str(event["event_id"])
