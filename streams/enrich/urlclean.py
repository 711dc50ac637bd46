"""Normalise page URLs and strip PII / click-id parameters before storage.

- scheme and host lower-cased, ``user:pass@`` dropped, default ports (80/443) dropped;
- the host keeps its ``www.`` (it is part of the site's identity; referrer.py strips it for
  classification only);
- path kept as sent ("/" when empty), no percent-decoding, no dot-segment resolution;
- parameters whose lower-cased name is in ``strip_params`` are removed, the others keep their
  order and original encoding; ``query`` holds the first value of every parameter (decoded)
  *before* stripping, for campaign parsing;
- the fragment is dropped unless ``keep_fragment`` (hash routing); a kept fragment that looks
  like ``#/route?a=b`` is stripped of the same parameters;
- only http/https URLs with a host are accepted; anything else gives empty fields (never raises).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from urllib.parse import unquote_plus

# Click ids are stripped from stored URLs; the campaign parser reads them from CleanUrl.query,
# which is taken before stripping.
DEFAULT_STRIP_PARAMS: frozenset[str] = frozenset(
    {
        # personal data
        "email", "e-mail", "e_mail", "mail", "emailaddress", "email_address", "user_email", "phone",
        "phone_number", "phonenumber", "tel", "name", "first_name", "last_name", "firstname",
        "lastname", "fname", "lname", "full_name", "fullname", "address", "ssn", "dob", "birthdate",
        # secrets and sessions
        "password", "pass", "passwd", "pwd", "token", "access_token", "id_token", "refresh_token",
        "auth", "authorization", "auth_token", "api_key", "apikey", "secret", "client_secret",
        "otp", "signature", "sig", "session", "sessionid", "session_id", "sid", "jsessionid",
        "phpsessid", "aspsessionid",
        # ad click ids and email-tool trackers
        "gclid", "gbraid", "wbraid", "dclid", "gclsrc", "msclkid", "fbclid", "ttclid", "li_fat_id",
        "twclid", "yclid", "igshid", "epik", "rdt_cid", "sccid", "irclickid", "mc_eid", "_hsenc",
        "_hsmi", "__hssc", "__hstc", "__hsfp", "hsctatracking", "_ga", "_gl", "_kx", "vero_id",
        "oly_anon_id", "oly_enc_id", "mkt_tok",
    }
)

_DEFAULT_PORTS = {"http": "80", "https": "443"}
_BAD_HOST = re.compile(r"[\s<>\"'`{}|\\^%()]")


@dataclass(frozen=True, slots=True)
class CleanUrl:
    """A normalised URL and its parts."""

    url: str
    host: str
    path: str
    query: dict[str, str] = field(default_factory=dict)


def clean_url(
    url: str | None,
    strip_params: frozenset[str] = DEFAULT_STRIP_PARAMS,
    keep_fragment: bool = False,
) -> CleanUrl:
    """Normalise ``url``; empty fields for anything unparsable."""
    if not url or not isinstance(url, str):
        return CleanUrl("", "", "", {})
    try:
        return _clean(url.strip(), strip_params, keep_fragment)
    except Exception:  # defensive: enrichment must never drop an event
        return CleanUrl("", "", "", {})


def _clean(url: str, strip_params: frozenset[str], keep_fragment: bool) -> CleanUrl:
    sep = url.find("://")
    if sep <= 0:
        return CleanUrl("", "", "", {})
    scheme = url[:sep].lower()
    if scheme not in _DEFAULT_PORTS:
        return CleanUrl("", "", "", {})
    rest = url[sep + 3 :]
    hash_i = rest.find("#")
    fragment = rest[hash_i + 1 :] if hash_i >= 0 else None
    if hash_i >= 0:
        rest = rest[:hash_i]
    q_i = rest.find("?")
    query_str = rest[q_i + 1 :].rstrip() if q_i >= 0 else None
    if q_i >= 0:
        rest = rest[:q_i]
    slash = rest.find("/")
    netloc, path = (rest[:slash], rest[slash:]) if slash >= 0 else (rest, "")
    host, port = _split_netloc(netloc)
    if not host:
        return CleanUrl("", "", "", {})
    authority = f"{host}:{port}" if port and port != _DEFAULT_PORTS[scheme] else host
    path = path.rstrip() or "/"  # stray whitespace before "?"/"#" is not part of the path

    query: dict[str, str] = {}
    kept_query = _filter_query(query_str, strip_params, query) if query_str is not None else ""
    out = f"{scheme}://{authority}{path}"
    if kept_query:
        out += "?" + kept_query
    if keep_fragment and fragment:
        fragment = _filter_fragment(fragment, strip_params).rstrip()
        if fragment:
            out += "#" + fragment
    return CleanUrl(out.rstrip(), host, path, query)


def _split_netloc(netloc: str) -> tuple[str, str]:
    """(lower-case host, port) or ("", "") when the authority is not a usable host."""
    at = netloc.rfind("@")
    if at >= 0:
        netloc = netloc[at + 1 :]
    if netloc.startswith("["):  # IPv6 literal
        end = netloc.find("]")
        if end < 0:
            return "", ""
        host, after = netloc[: end + 1].lower(), netloc[end + 1 :]
        port = after[1:] if after.startswith(":") else ""
    else:
        host, _, port = netloc.partition(":")
        host = host.lower().rstrip(".")
    if port and not port.isdigit():
        return "", ""
    port = port.lstrip("0") or ("0" if port else "")
    if not host or len(host) > 253 or _BAD_HOST.search(host) or ".." in host:
        return "", ""
    return host, port


def _filter_query(query_str: str, strip_params: frozenset[str], first: dict[str, str]) -> str:
    kept: list[str] = []
    for part in query_str.split("&"):
        if not part or part.isspace():
            continue
        raw_key, eq, raw_val = part.partition("=")
        key = raw_key
        if "%" in key or "+" in key:
            key = unquote_plus(key, errors="replace")
        if key not in first:
            first[key] = unquote_plus(raw_val, errors="replace") if eq else ""
        if key.strip().lower() not in strip_params:
            kept.append(part)
    return "&".join(kept)


def _filter_fragment(fragment: str, strip_params: frozenset[str]) -> str:
    q_i = fragment.find("?")
    if q_i < 0:
        if "=" not in fragment:
            return fragment
        return _filter_query(fragment, strip_params, {})
    kept = _filter_query(fragment[q_i + 1 :], strip_params, {})
    return fragment[:q_i] + ("?" + kept if kept else "")
