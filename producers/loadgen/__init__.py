"""Load generator: realistic visitor journeys sent to a collector or into Kafka, with the
ground truth of what was sent (`clickstream loadgen`, docs/loadgen.md)."""

from producers.loadgen.model import Journey, JourneyMaker, Options
from producers.loadgen.send import HttpTransport, KafkaTransport, Limits, Stats, run
from producers.loadgen.truth import TruthWriter, load

__all__ = ["HttpTransport", "Journey", "JourneyMaker", "KafkaTransport", "Limits", "Options",
           "Stats", "TruthWriter", "load", "run"]
