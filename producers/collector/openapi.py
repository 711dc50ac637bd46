"""OpenAPI 3.1 document of the collector, built from code and the event contract's JSON
Schema. `python -m producers.collector.openapi` writes the committed copy (openapi.json);
a unit test fails when the two differ."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

from clickstream.settings import CollectorSettings
from producers.collector.pixel import FIELDS, UTM

OPENAPI_FILE = Path(__file__).resolve().parent / "openapi.json"
EVENT_SCHEMA_FILE = Path(__file__).resolve().parents[2] / "schemas" / "event-v1.schema.json"
REQUEST_CODES = ["malformed_json", "malformed_batch", "unsupported_media_type",
                 "body_too_large", "too_many_events", "unknown_site", "origin_not_allowed",
                 "rate_limited", "overloaded", "shutting_down", "internal_error"]
EVENT_CODES = ["invalid_event", "unknown_site", "origin_not_allowed"]


def _default(name: str) -> Any:
    return CollectorSettings.model_fields[name].default


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _rewrite_refs(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: (v.replace("#/$defs/", "#/components/schemas/") if k == "$ref" else
                    _rewrite_refs(v)) for k, v in node.items()}
    if isinstance(node, list):
        return [_rewrite_refs(v) for v in node]
    return node


def contract_schemas() -> dict[str, Any]:
    """Event (and its $defs) from schemas/event-v1.schema.json, as OpenAPI components."""
    schema = orjson.loads(EVENT_SCHEMA_FILE.read_bytes())
    for key in ("$schema", "$id"):
        schema.pop(key, None)
    defs = schema.pop("$defs", {})
    return _rewrite_refs({**defs, "Event": schema})


def _error(description: str, retry: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {"description": description,
                           "content": {"application/json": {"schema": _ref("Error")}}}
    if retry:
        out["headers"] = {"Retry-After": {"description": "Seconds to wait before retrying.",
                                          "schema": {"type": "integer", "minimum": 1}}}
    return out


def _gif(description: str) -> dict[str, Any]:
    return {"description": description,
            "content": {"image/gif": {"schema": {"type": "string", "format": "binary"}}}}


def _privacy_headers() -> list[dict[str, Any]]:
    return [{"name": h, "in": "header", "required": False, "schema": {"type": "string"},
             "description": "1: drop the IP and reduce the user agent (see docs/collector.md)."}
            for h in ("DNT", "Sec-GPC")]


def _events_path() -> dict[str, Any]:
    max_events = _default("collector_max_events")
    batch = {"type": "array", "items": _ref("Event"), "maxItems": max_events}
    body_schema = {"oneOf": [batch, {"type": "object", "required": ["events"],
                                     "properties": {"events": batch}}]}
    return {
        "post": {
            "operationId": "postEvents",
            "summary": "Send a batch of events (JSON array or {\"events\": [...]}).",
            "description": f"At most {max_events} events and "
            f"{_default('collector_max_body_bytes')} bytes by default (configurable). Bad "
            "events in a good batch are dead-lettered on clickstream.invalid and listed in "
            "`errors`; the others are accepted. 202 means buffered and will be delivered.",
            "parameters": _privacy_headers(),
            "requestBody": {"required": True, "content": {
                "application/json": {"schema": body_schema},
                "text/plain": {"schema": body_schema}}},
            "responses": {
                "202": {"description": "Batch taken: counts and per-event errors.",
                        "content": {"application/json": {"schema": _ref("BatchResult")}}},
                "400": _error("Body is not JSON, or not an array / {events: [...]}."),
                "403": _error("Origin not allowed, or no event is for a registered site "
                              "accepting this Origin."),
                "413": _error("Body or event count over the limit."),
                "415": _error("Content-Type is neither application/json nor text/plain."),
                "429": _error("Rate limited (per client IP).", retry=True),
                "503": _error("Buffer full (Kafka slow or down) or stopping.", retry=True),
            },
        },
        "options": {
            "operationId": "preflightEvents",
            "summary": "CORS preflight: allowed origins are echoed, never `*`.",
            "responses": {"204": {"description": "Origin allowed."},
                          "403": _error("Origin not allowed.")},
        },
    }


def _pixel_path() -> dict[str, Any]:
    params: list[dict[str, Any]] = [
        {"name": f, "in": "query", "required": False, "schema": {"type": "string"},
         "description": f"Contract field `{f}`." + {
             "type": " Default: pageview.", "event_id": " Default: a new UUID.",
             "ts": " Epoch ms or RFC 3339. Default: now.",
             "url": " Default: the Referer header."}.get(f, "")}
        for f in FIELDS]
    params += [{"name": u, "in": "query", "required": False, "schema": {"type": "string"},
                "description": "Folded into the url's query (props when there is no url)."}
               for u in UTM]
    params += [{"name": "revenue", "in": "query", "required": False,
                "schema": {"type": "string"}, "description": "Amount (a number)."},
               {"name": "currency", "in": "query", "required": False,
                "schema": {"type": "string"}, "description": "ISO 4217. Default: EUR."}]
    return {"get": {
        "operationId": "pixel",
        "summary": "One event from query parameters; props as p.<key>=value.",
        "description": "Always answers a 1x1 GIF with no-cache headers. Invalid events are "
        "dead-lettered (still 200).",
        "parameters": params + _privacy_headers(),
        "responses": {"200": _gif("Stored or dead-lettered."),
                      "403": _gif("Unknown site or Origin not allowed."),
                      "429": _gif("Rate limited."), "503": _gif("Buffer full or stopping.")},
    }}


def _simple(op: str, summary: str, responses: dict[str, Any]) -> dict[str, Any]:
    return {"get": {"operationId": op, "summary": summary, "responses": responses}}


def _json(description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _components() -> dict[str, Any]:
    return {**contract_schemas(),
            "BatchResult": {"type": "object", "required": ["accepted", "rejected", "errors"],
                            "properties": {
                                "accepted": {"type": "integer", "minimum": 0},
                                "rejected": {"type": "integer", "minimum": 0},
                                "errors": {"type": "array", "items": _ref("EventError")}}},
            "EventError": {"type": "object", "required": ["index", "code", "reason"],
                           "properties": {"index": {"type": "integer", "minimum": 0},
                                          "code": {"enum": EVENT_CODES},
                                          "reason": {"type": "string"}}},
            "Error": {"type": "object", "required": ["error", "message"],
                      "properties": {"error": {"enum": REQUEST_CODES},
                                     "message": {"type": "string"}}},
            "Ready": {"type": "object", "required": ["ready"],
                      "properties": {"ready": {"type": "boolean"}, "kafka": {"type": "boolean"},
                                     "accepting": {"type": "boolean"},
                                     "buffer_events": {"type": "integer"},
                                     "buffer_max_events": {"type": "integer"}}}}


def build() -> dict[str, Any]:
    text = {"description": "Text.", "content": {"text/plain": {"schema": {"type": "string"}}}}
    return {
        "openapi": "3.1.0",
        "info": {"title": "Clickstream collector", "version": "1.0.0",
                 "description": "HTTP ingestion of contract-v1 events. See docs/collector.md.",
                 "license": {"name": "Apache-2.0", "identifier": "Apache-2.0"}},
        "paths": {
            "/v1/events": _events_path(),
            "/v1/pixel.gif": _pixel_path(),
            "/t.js": _simple("tracker", "The browser tracker script.", {
                "200": {"description": "Script.", "content": {"application/javascript": {
                    "schema": {"type": "string"}}}},
                "304": {"description": "Not modified (If-None-Match)."},
                "404": _error("Tracker not built.")}),
            "/healthz": _simple("healthz", "Liveness: the process answers.", {
                "200": _json("Alive.", {"type": "object"})}),
            "/readyz": _simple("readyz", "Readiness: Kafka reachable, buffer has room.", {
                "200": _json("Ready.", _ref("Ready")), "503": _json("Not ready.", _ref("Ready"))}),
            "/metrics": _simple("metrics", "Prometheus metrics.", {"200": text}),
            "/openapi.json": _simple("openapi", "This document.", {
                "200": _json("OpenAPI 3.1 document.", {"type": "object"})}),
        },
        "components": {"schemas": _components()},
    }


def render() -> bytes:
    return orjson.dumps(build(), option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n"


def main() -> None:
    OPENAPI_FILE.write_bytes(render())
    print(f"wrote {OPENAPI_FILE}")


if __name__ == "__main__":
    main()
