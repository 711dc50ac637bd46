"""Event contract v1: what trackers send and the collector accepts.

Field names are public API: trackers in the wild send them. Add optional fields only;
never rename or change the meaning of one (that is a v2).
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    field_validator,
    model_validator,
)

from schemas.timefmt import EPOCH

CONTRACT_VERSION = 1

EventType = Literal["pageview", "event", "identify", "conversion"]

#: Oldest and newest client timestamps we accept (anything else is a broken clock or garbage).
TS_MIN = datetime(2000, 1, 1, tzinfo=UTC)
TS_MAX = datetime(2100, 1, 1, tzinfo=UTC)

_RFC3339 = re.compile(
    r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})$"
)

SiteId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")]
ShortText = Annotated[str, StringConstraints(max_length=128)]
UrlText = Annotated[str, StringConstraints(max_length=2048)]
PropKey = Annotated[str, StringConstraints(min_length=1, max_length=64)]
PropValue = Annotated[str, StringConstraints(max_length=512)] | bool | int | float

LangTag = Annotated[str, StringConstraints(pattern=r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{1,8})*$")]

MAX_PROPS = 50


class Revenue(BaseModel):
    """Money attached to a conversion. `amount` is decimal to keep cents exact."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    amount: Annotated[Decimal, Field(ge=-1_000_000_000, le=1_000_000_000, decimal_places=6)]
    currency: Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")] = Field(
        description="ISO 4217 code, upper case (EUR, USD, ...)."
    )

    @field_validator("amount", mode="before")
    @classmethod
    def _number_not_bool(cls, v: Any) -> Any:
        if isinstance(v, bool) or not isinstance(v, int | float | str | Decimal):
            raise ValueError("amount must be a number")
        if isinstance(v, float) and not math.isfinite(v):
            raise ValueError("amount must be finite")
        if isinstance(v, str):
            raise ValueError("amount must be a JSON number, not a string")
        return Decimal(str(v)) if isinstance(v, float) else Decimal(v)


class Event(BaseModel):
    """One tracked event, as sent by a tracker (contract v1)."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, str_strip_whitespace=True)

    event_id: UUID = Field(description="Client-made UUID; the pipeline deduplicates on it.")
    type: EventType = Field(description="pageview | event | identify | conversion.")
    site_id: SiteId = Field(description="The site this event belongs to (registered id).")
    anonymous_id: ShortText | None = Field(
        default=None,
        description="First-party visitor id. Absent: the pipeline derives a daily-salted "
        "cookieless id from site, IP and user agent.",
    )
    user_id: Annotated[str, StringConstraints(max_length=256)] | None = Field(
        default=None, description="The site's own id for a logged-in user."
    )
    name: ShortText | None = Field(
        default=None, description="Event or conversion name, e.g. signup, purchase."
    )
    ts: datetime = Field(
        description="Client time: epoch milliseconds (number) or an RFC 3339 string with zone."
    )
    url: UrlText | None = Field(default=None, description="Full page URL, with query string.")
    referrer: UrlText | None = Field(default=None, description="document.referrer.")
    title: Annotated[str, StringConstraints(max_length=512)] | None = None
    revenue: Revenue | None = Field(default=None, description="Money, for conversions.")
    props: dict[PropKey, PropValue] = Field(
        default_factory=dict,
        description=f"Flat custom properties (at most {MAX_PROPS}): string, number or bool.",
    )
    screen: Annotated[str, StringConstraints(pattern=r"^\d{1,5}x\d{1,5}$")] | None = Field(
        default=None, description="Screen size as WIDTHxHEIGHT."
    )
    lang: LangTag | None = Field(
        default=None, description="BCP 47 language tag (navigator.language)."
    )

    @field_validator("event_id", mode="before")
    @classmethod
    def _uuid_from_string(cls, v: Any) -> Any:
        if isinstance(v, str):
            return UUID(v)
        return v

    @field_validator("ts", mode="before")
    @classmethod
    def _parse_ts(cls, v: Any) -> datetime:
        return parse_client_ts(v)

    @field_validator("props", mode="after")
    @classmethod
    def _props_bounded(cls, v: dict[str, Any]) -> dict[str, Any]:
        if len(v) > MAX_PROPS:
            raise ValueError(f"at most {MAX_PROPS} props")
        for key, val in v.items():
            if isinstance(val, float) and not math.isfinite(val):
                raise ValueError(f"prop {key!r} is not a finite number")
        return v

    @model_validator(mode="after")
    def _type_rules(self) -> Event:
        if self.type == "pageview" and not self.url:
            raise ValueError("a pageview needs url")
        if self.type in ("event", "conversion") and not self.name:
            raise ValueError(f"an event of type {self.type} needs name")
        if self.type == "identify" and not self.user_id:
            raise ValueError("identify needs user_id")
        if self.revenue is not None and self.type not in ("conversion", "event"):
            raise ValueError("revenue is only allowed on conversion or event")
        return self


def parse_client_ts(v: Any) -> datetime:
    """Epoch milliseconds (int/float, not bool) or RFC 3339 with an explicit zone -> aware UTC."""
    if isinstance(v, datetime):
        dt = v if v.tzinfo else v.replace(tzinfo=UTC)
    elif isinstance(v, bool):
        raise ValueError("ts must be epoch milliseconds or an RFC 3339 string, not a boolean")
    elif isinstance(v, int | float):
        if isinstance(v, float) and not math.isfinite(v):
            raise ValueError("ts must be a finite number")
        if not (TS_MIN.timestamp() * 1000 <= v < TS_MAX.timestamp() * 1000):
            raise ValueError("ts out of range (epoch milliseconds between 2000 and 2100 expected)")
        # integer milliseconds exactly (v / 1000 as a float would round some of them)
        dt = EPOCH + timedelta(milliseconds=v) if isinstance(v, int) else \
            datetime.fromtimestamp(v / 1000, tz=UTC)
    elif isinstance(v, str):
        if not _RFC3339.match(v):
            raise ValueError("ts string must be RFC 3339 with a zone, e.g. 2026-01-31T12:00:00Z")
        frac = re.search(r"\.(\d+)", v)
        if frac and len(frac.group(1)) > 6:  # Python keeps microseconds at most
            v = v.replace(frac.group(0), "." + frac.group(1)[:6])
        dt = datetime.fromisoformat(v.replace("z", "Z").replace("Z", "+00:00"))
    else:
        raise ValueError("ts must be epoch milliseconds or an RFC 3339 string")
    dt = dt.astimezone(UTC)
    if not (TS_MIN <= dt < TS_MAX):
        raise ValueError("ts out of range (years 2000-2099)")
    return dt


def json_schema() -> dict[str, Any]:
    """JSON Schema of the v1 contract (committed as schemas/event-v1.schema.json)."""
    schema = Event.model_json_schema(mode="validation")
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = "https://clickstream.dev/schemas/event-v1.schema.json"
    schema["title"] = "Clickstream event v1"
    # pydantic's schema for `ts` says date-time string only; the contract also takes epoch ms.
    schema["properties"]["ts"] = {
        "title": "Ts",
        "description": Event.model_fields["ts"].description,
        "anyOf": [
            {"type": "integer", "minimum": 946684800000, "maximum": 4102444800000},
            {"type": "number", "minimum": 946684800000, "maximum": 4102444800000},
            {"type": "string", "format": "date-time"},
        ],
    }
    # Decimal shows as number-or-string in pydantic's schema; the contract wants a number.
    schema["$defs"]["Revenue"]["properties"]["amount"] = {
        "title": "Amount", "type": "number", "minimum": -1_000_000_000, "maximum": 1_000_000_000,
    }
    return schema


def describe_validation_error(exc: ValidationError) -> str:
    """First problems of a validation error in one short line."""
    parts = []
    for err in exc.errors()[:3]:
        loc = ".".join(str(p) for p in err["loc"]) or "event"
        parts.append(f"{loc}: {err['msg']}")
    more = len(exc.errors()) - 3
    return "; ".join(parts) + (f" (+{more} more)" if more > 0 else "")
