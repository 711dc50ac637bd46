"""The load generator's expectations agree with the worker's enrichment: address blocks map
to their countries in DB-IP, user agents to their device types, arrivals to their channels."""

from __future__ import annotations

import ipaddress
import random

import pytest

from producers.loadgen.catalog import ARRIVALS, BOT_USER_AGENTS, COUNTRIES, DEVICES, Arrival
from streams.enrich.bots import BotDetector
from streams.enrich.campaign import parse_campaign
from streams.enrich.channel import traffic_source
from streams.enrich.geo import GeoLookup
from streams.enrich.referrer import ReferrerClassifier
from streams.enrich.useragent import UserAgentParser


def test_address_blocks_are_in_their_country() -> None:
    geo = GeoLookup.open()
    if geo.source != "dbip-city":
        pytest.fail("DB-IP city database missing: run `make install`")
    rng = random.Random(0)
    for country in COUNTRIES:
        for block in country.blocks:
            net = ipaddress.IPv4Network(block)
            hits = [geo.lookup(str(net[rng.randrange(1, net.num_addresses - 1)])).country
                    for _ in range(300)]
            share = hits.count(country.code) / len(hits)
            assert share >= 0.99, (country.code, block, share)


def test_user_agents_give_the_expected_device_and_bot_flag() -> None:
    parser, bots = UserAgentParser(), BotDetector.from_data()
    for device in DEVICES:
        for ua in device.user_agents:
            info = parser.parse(ua)
            assert info.device_type == device.device_type and not bots.reason(ua, info), ua
    for ua in BOT_USER_AGENTS:
        assert bots.reason(ua, parser.parse(ua)), ua


@pytest.mark.parametrize("arrival", ARRIVALS, ids=lambda a: a.kind)
def test_arrivals_get_the_expected_source_and_channel(arrival: Arrival) -> None:
    referrers = ReferrerClassifier.from_data()
    url = "https://shop.example/p/x?" + arrival.query.format(c="spring-sale", id="c1d2e3")
    src = traffic_source(parse_campaign(url),
                         referrers.classify(arrival.referrer or None, page_host="shop.example"))
    assert (src.channel, src.source, src.medium) == (arrival.channel, arrival.source,
                                                    arrival.medium)
