"""What the simulated world is made of: sites, countries (real ISP address blocks), devices
(real user agents), arrivals (search, social, e-mail, QR, paid, AI, referral, direct), pages.

Every expectation here (country of an address block, device type of a user agent, channel of
an arrival) is knowledge written down independently of the stream worker; unit tests check
the worker's enrichment agrees with it.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Site:
    site_id: str
    host: str
    timezone: str
    weight: float
    pages: tuple[str, ...]
    goal: str  # conversion name
    revenue: tuple[float, float]  # (min, max) amount, (0, 0): no revenue
    currency: str


SITES: tuple[Site, ...] = (
    Site("shop", "shop.example", "Europe/Berlin", 0.40,
         ("/", "/c/shoes", "/c/jackets", "/p/trail-runner-2", "/p/rain-shell", "/p/wool-socks",
          "/search", "/cart", "/checkout"), "purchase", (12.0, 240.0), "EUR"),
    Site("news", "news.example", "America/New_York", 0.30,
         ("/", "/world", "/tech", "/tech/chips-2026", "/sport/finals", "/opinion/markets",
          "/subscribe"), "subscribe", (4.99, 14.99), "USD"),
    Site("saas", "app.saas.example", "Asia/Tokyo", 0.20,
         ("/", "/pricing", "/features", "/docs/start", "/docs/api", "/blog/launch",
          "/signup"), "signup", (0.0, 0.0), "JPY"),
    Site("travel", "travel.example", "Australia/Sydney", 0.10,
         ("/", "/destinations/kyoto", "/destinations/lisbon", "/deals", "/book"),
         "booking", (180.0, 2400.0), "AUD"),
)


@dataclass(frozen=True, slots=True)
class Country:
    code: str  # ISO 3166-1 alpha-2, as the geo step should report it
    timezone: str
    lang: str
    weight: float
    blocks: tuple[str, ...]  # IPv4 CIDRs of consumer ISPs in that country


# Consumer ISP blocks, checked against DB-IP Lite (tests/unit/test_loadgen_catalog.py):
# Comcast / Verizon / Charter (US), BT / Virgin Media (GB), Deutsche Telekom (DE),
# Free / SFR (FR), SoftBank / NTT (JP), Jio / Airtel / BSNL (IN), Telstra (AU), Telefonica (ES),
# Telecom Italia (IT), KPN (NL), Rogers / Bell (CA), Telmex (MX), Vivo (BR).
COUNTRIES: tuple[Country, ...] = (
    Country("US", "America/New_York", "en-US", 0.28,
            ("73.0.0.0/12", "71.192.0.0/12", "24.0.0.0/13", "98.192.0.0/13")),
    Country("GB", "Europe/London", "en-GB", 0.10, ("86.128.0.0/12", "81.96.0.0/13")),
    Country("DE", "Europe/Berlin", "de-DE", 0.12,
            ("79.192.0.0/12", "91.0.0.0/13", "87.160.0.0/12")),
    Country("FR", "Europe/Paris", "fr-FR", 0.07, ("82.64.0.0/14", "86.192.0.0/12")),
    Country("JP", "Asia/Tokyo", "ja-JP", 0.08, ("60.32.0.0/12", "153.128.0.0/11")),
    Country("IN", "Asia/Kolkata", "en-IN", 0.09,
            ("49.32.0.0/12", "122.160.0.0/13", "117.192.0.0/12")),
    Country("AU", "Australia/Sydney", "en-AU", 0.05, ("120.144.0.0/13", "1.120.0.0/13")),
    Country("ES", "Europe/Madrid", "es-ES", 0.05, ("83.32.0.0/12", "88.0.0.0/12")),
    Country("IT", "Europe/Rome", "it-IT", 0.04, ("79.0.0.0/12", "87.0.0.0/13")),
    Country("NL", "Europe/Amsterdam", "nl-NL", 0.03, ("84.24.0.0/13", "77.160.0.0/12")),
    Country("CA", "America/Toronto", "en-CA", 0.04, ("99.224.0.0/12", "70.24.0.0/13")),
    Country("MX", "America/Mexico_City", "es-MX", 0.03, ("187.128.0.0/11", "189.128.0.0/11")),
    Country("BR", "America/Sao_Paulo", "pt-BR", 0.02, ("179.96.0.0/13",)),
)


@dataclass(frozen=True, slots=True)
class Device:
    device_type: str  # as the worker should report it: desktop | mobile | tablet | bot
    weight: float
    screen: str
    user_agents: tuple[str, ...]


DEVICES: tuple[Device, ...] = (
    Device("desktop", 0.42, "1920x1080", (
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/131.0.0.0 Safari/537.36",
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/131.0.0.0 Safari/537.36 Edg/131.0.0.0",
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 Firefox/133.0",
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like "
        "Gecko) Version/18.1 Safari/605.1.15",
        "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0",
    )),
    Device("mobile", 0.50, "390x844", (
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, "
        "like Gecko) Version/17.5 Mobile/15E148 Safari/604.1",
        "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/131.0.0.0 Mobile Safari/537.36",
        "Mozilla/5.0 (Linux; Android 14; SAMSUNG SM-S928B) AppleWebKit/537.36 (KHTML, like "
        "Gecko) SamsungBrowser/26.0 Chrome/122.0.0.0 Mobile Safari/537.36",
        "Mozilla/5.0 (Linux; Android 15; Pixel 9) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/131.0.6778.104 Mobile Safari/537.36",
    )),
    Device("tablet", 0.08, "820x1180", (
        "Mozilla/5.0 (iPad; CPU OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like "
        "Gecko) Version/17.5 Mobile/15E148 Safari/604.1",
    )),
)

BOT_USER_AGENTS: tuple[str, ...] = (
    "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
    "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)",
    "Mozilla/5.0 (compatible; AhrefsBot/7.0; +http://ahrefs.com/robot/)",
    "Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; GPTBot/1.2; "
    "+https://openai.com/gptbot)",
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "HeadlessChrome/131.0.0.0 Safari/537.36",
    "python-requests/2.32.3",
)


@dataclass(frozen=True, slots=True)
class Arrival:
    """How a session starts: landing-page query and referrer, and what the worker must make
    of it (GA4 default channel group, with our QR Code and AI Assistants channels)."""

    kind: str
    weight: float
    query: str  # added to the landing URL ("{c}" = campaign name)
    referrer: str
    channel: str
    source: str
    medium: str


ARRIVALS: tuple[Arrival, ...] = (
    Arrival("search-google", 0.22, "", "https://www.google.com/", "Organic Search",
            "google", "organic"),
    Arrival("search-bing", 0.04, "", "https://www.bing.com/search?q=trail+shoes",
            "Organic Search", "bing", "organic"),
    Arrival("search-duckduckgo", 0.02, "", "https://duckduckgo.com/", "Organic Search",
            "duckduckgo", "organic"),
    Arrival("social-facebook", 0.06, "", "https://l.facebook.com/", "Organic Social",
            "facebook", "social"),
    Arrival("social-reddit", 0.03, "", "https://www.reddit.com/r/running/", "Organic Social",
            "reddit", "social"),
    Arrival("social-linkedin", 0.02, "", "https://www.linkedin.com/", "Organic Social",
            "linkedin", "social"),
    Arrival("video-youtube", 0.02, "", "https://www.youtube.com/", "Organic Video",
            "youtube", "video"),
    Arrival("email", 0.08, "utm_source=newsletter&utm_medium=email&utm_campaign={c}", "",
            "Email", "newsletter", "email"),
    Arrival("qr", 0.03, "utm_source=poster&utm_medium=qr&utm_campaign={c}", "", "QR Code",
            "poster", "qr"),
    Arrival("paid-search", 0.08, "gclid={id}", "https://www.google.com/", "Paid Search",
            "google", "cpc"),
    Arrival("paid-social", 0.05, "utm_source=facebook&utm_medium=paid_social"
            "&utm_campaign={c}&fbclid={id}", "https://l.facebook.com/", "Paid Social",
            "facebook", "paid_social"),
    Arrival("display", 0.02, "utm_source=adnetwork&utm_medium=display&utm_campaign={c}", "",
            "Display", "adnetwork", "display"),
    Arrival("ai-chatgpt", 0.02, "", "https://chatgpt.com/", "AI Assistants", "chatgpt",
            "ai"),
    Arrival("referral", 0.06, "", "https://blog.partner.example/review", "Referral",
            "partner.example", "referral"),
    Arrival("direct", 0.25, "", "", "Direct", "(direct)", "(none)"),
)

CAMPAIGNS: tuple[str, ...] = ("spring-sale", "black-friday", "launch-2026", "weekly-digest",
                              "retargeting-q4", "store-opening")
ENGAGEMENT_EVENTS: tuple[str, ...] = ("scroll", "outbound_click", "video_play", "file_download")
