"""Do Not Track / Global Privacy Control at the edge.

With `DNT: 1` or `Sec-GPC: 1` the envelope carries no IP (so no geo lookup and no
cookieless id can be made from it) and a reduced user agent: browser and OS family with
major versions only and no device model, enough for device stats and bot filtering but not
for fingerprinting. The envelope is marked `"dnt": true` for the stream worker.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import lru_cache

MAX_UA_CHARS = 512

_VERSION_TAIL = re.compile(r"(?<=\d)([._])\d+")
_ANDROID_MODEL = re.compile(r"(Android[ \d._]*)(;[^)]*)\)")


def dnt_requested(headers: Mapping[str, str]) -> bool:
    return headers.get("DNT", "").strip() == "1" or headers.get("Sec-GPC", "").strip() == "1"


@lru_cache(maxsize=2048)
def reduce_ua(ua: str) -> str:
    """'... Android 14; Pixel 8 Build/AP1A) ... Chrome/131.0.6778.85 ...' ->
    '... Android 14; K) ... Chrome/131.0.0.0 ...' (as Chrome's own UA reduction does)."""
    ua = ua[:MAX_UA_CHARS]
    ua = _ANDROID_MODEL.sub(r"\1; K)", ua, count=1)
    return _VERSION_TAIL.sub(r"\g<1>0", ua)
