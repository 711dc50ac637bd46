"""Python tracker for backends: contract-v1 events over HTTP (collector) or straight to Kafka.

    from producers.tracker import HttpTransport, Tracker
    tracker = Tracker("my-site", transport=HttpTransport("https://collector.example"))
    tracker.pageview("https://my-site.example/pricing", anonymous_id="v-1")

See docs/trackers.md.
"""

from producers.tracker.base import Transport
from producers.tracker.client import Tracker
from producers.tracker.errors import TrackerError
from producers.tracker.http_transport import HttpTransport
from producers.tracker.kafka_transport import KafkaTransport, best_compression
from producers.tracker.stats import TransportStats

__all__ = [
    "HttpTransport",
    "KafkaTransport",
    "Tracker",
    "TrackerError",
    "Transport",
    "TransportStats",
    "best_compression",
]
