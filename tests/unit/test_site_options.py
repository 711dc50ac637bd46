"""Per-site options from the site registry file: parsing, errors, and their effect on
sessions (time zone, timeout) and attribution (lookback, goals) in the worker's code."""

from __future__ import annotations

from pathlib import Path

import pytest

from producers.collector.sites import SitesFileError, load_sites
from streams.attribution.stream import Attributor
from streams.sessionize import Sessionizer
from streams.sessions import SessionRules
from streams.site_options import SiteOptions, load_site_options
from tests.unit.test_attribution_stream_property import MemoryTable, row

MIN, DAY = 60_000, 86_400_000
T0 = 1_760_000_000_000  # 2025-10-09T08:53:20Z

SITES = """
[sites.shop]
origins = ["https://shop.example"]
timezone = "Asia/Tokyo"
session_timeout_minutes = 10
attribution_lookback_days = 2
goals = ["event:signup", "pageview:/thank-you"]

[sites.blog]
origins = ["*"]
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "sites.toml"
    path.write_text(text)
    return path


def test_options_parsed_and_the_collector_still_reads_origins(tmp_path: Path) -> None:
    path = write(tmp_path, SITES)
    options = load_site_options(path)
    assert options == {"shop": SiteOptions("Asia/Tokyo", 10, 2,
                                           ("event:signup", "pageview:/thank-you"))}
    registry = load_sites(path)
    assert registry.known("shop") and registry.origin_allowed("shop", "https://shop.example")
    rules = options["shop"].session_rules(SessionRules())
    assert (rules.timezone, rules.timeout_ms) == ("Asia/Tokyo", 10 * MIN)
    assert load_site_options(None) == {}


@pytest.mark.parametrize("entry, message", [
    ('timezone = "Mars/Olympus"', "not an IANA zone"),
    ("session_timeout_minutes = 0", "from 1 to 1440"),
    ("attribution_lookback_days = 91", "from 1 to 90"),
    ('attribution_lookback_days = "30"', "whole number"),
    ('goals = ["click:buy"]', "event:NAME or pageview:/path"),
    ("goals = 3", "list of strings"),
    ('timzone = "UTC"', "unknown option(s) timzone"),
])
def test_bad_options_name_the_site_and_the_fix(tmp_path: Path, entry: str, message: str
                                               ) -> None:
    path = write(tmp_path, f'[sites.shop]\norigins = ["*"]\n{entry}\n')
    with pytest.raises(SitesFileError, match="site 'shop'") as info:
        load_site_options(path)
    assert message in str(info.value)


def sessionizer_for(tmp_path: Path) -> tuple[Sessionizer, Attributor]:
    options = load_site_options(write(tmp_path, SITES))
    default = SessionRules(timeout_ms=30 * MIN, split_at_midnight=True, lateness_ms=10**12)
    attributor = Attributor(lookback_ms=30 * DAY, goals=(),
                            site_lookback_ms={s: o.attribution_lookback_days * DAY
                                              for s, o in options.items()
                                              if o.attribution_lookback_days},
                            site_goals={s: o.goals for s, o in options.items()
                                        if o.goals is not None})
    rules = {s: o.session_rules(default) for s, o in options.items()}
    sessionizer = Sessionizer(MemoryTable(), default, attributor=attributor,  # type: ignore[arg-type]
                              site_rules=rules)
    sessionizer.begin_batch()
    return sessionizer, attributor


def visit(sessionizer: Sessionizer, site: str, kind: str, ts: int, **fields: str) -> dict:
    ctx = row(kind, ts, "10")
    ctx.row["site_id"] = site
    ctx.row.update(fields)
    sessionizer(ctx)
    return ctx.row


def test_site_timeout_and_time_zone_cut_sessions(tmp_path: Path) -> None:
    sessionizer, _ = sessionizer_for(tmp_path)
    # 15 minutes apart: a new session on shop (10 min timeout), the same on blog (30 min)
    a = [visit(sessionizer, site, "direct", T0 + i * 15 * MIN) for site in ("shop", "blog")
         for i in range(2)]
    assert a[0]["session_id"] != a[1]["session_id"]
    assert a[2]["session_id"] == a[3]["session_id"]
    # Tokyo midnight is 15:00 UTC: 14:55 -> 15:05 UTC splits shop, not blog
    midnight_utc = 1_760_108_400_000  # 2025-10-10T15:00:00Z = 2025-10-11 00:00 in Tokyo
    b = [visit(sessionizer, site, "direct", midnight_utc + d * MIN) for site in ("shop", "blog")
         for d in (-5, 5)]
    assert b[0]["session_id"] != b[1]["session_id"]
    assert b[2]["session_id"] == b[3]["session_id"]


def test_site_lookback_and_goals_drive_attribution(tmp_path: Path) -> None:
    sessionizer, attributor = sessionizer_for(tmp_path)
    for site in ("shop", "blog"):
        visit(sessionizer, site, "google", T0)  # a touchpoint 3 days before converting
        visit(sessionizer, site, "buy", T0 + 3 * DAY)
        visit(sessionizer, site, "direct", T0 + 3 * DAY + 5 * MIN, type="event", name="signup")
        visit(sessionizer, site, "direct", T0 + 3 * DAY + 6 * MIN, path="/thank-you")
    convs = {(c["site_id"], c["name"]): c for c in attributor.conversions}
    # goals: only shop's are configured; the explicit conversion counts on both sites
    assert set(convs) == {("shop", "purchase"), ("blog", "purchase"), ("shop", "signup"),
                          ("shop", "/thank-you")}
    # shop looks back 2 days: the Google visit 3 days earlier is outside; blog: 30 days
    assert convs["shop", "purchase"]["first_channel"] == "Direct"
    assert convs["blog", "purchase"]["first_channel"] == "Organic Search"
    assert convs["blog", "purchase"]["path_length"] == 2
