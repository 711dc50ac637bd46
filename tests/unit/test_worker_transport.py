"""The worker's broker URLs pick this project's Faust transports (streams/kafka_compat.py):
true end offsets on the embedded broker, and the re-seek of uncommitted partitions on both."""

from __future__ import annotations

from faust.transport.drivers import by_url

from clickstream.settings import WorkerSettings
from streams import kafka_compat
from streams.app import broker_url


def test_each_profile_gets_its_transport() -> None:
    kafka_compat.register()
    embedded = broker_url(WorkerSettings(kafka_bootstrap="127.0.0.1:9092",
                                         broker_profile="embedded"))
    kafka = broker_url(WorkerSettings(kafka_bootstrap="k1:9092, k2:9092",
                                      broker_profile="kafka"))
    assert embedded == "tansu://127.0.0.1:9092"
    assert kafka == "clickstream+kafka://k1:9092;clickstream+kafka://k2:9092"
    assert by_url(embedded) is kafka_compat.Transport
    assert by_url(kafka.split(";")[0]) is kafka_compat.KafkaTransport
    # both consumers re-seek partitions without a commit; only Tansu's corrects end offsets
    tansu_thread = kafka_compat.Transport.Consumer._new_consumer_thread
    kafka_thread = kafka_compat.KafkaTransport.Consumer._new_consumer_thread
    assert tansu_thread is not kafka_thread
    assert issubclass(kafka_compat._TansuConsumerThread, kafka_compat._ReseekConsumerThread)
