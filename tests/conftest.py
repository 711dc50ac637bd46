"""Fixtures: the real embedded broker (started once per session) and isolated stacks."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from clickstream.embedded_broker import EmbeddedBroker, free_port
from clickstream.settings import CollectorSettings
from clickstream.stack import Stack
from sinks.store import RemoteStore


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedBroker]:
    """One Tansu broker for the whole session; tests isolate by topic prefix and group."""
    log = tmp_path_factory.mktemp("broker") / "tansu.log"
    with EmbeddedBroker(log_path=log) as b:
        yield b


@pytest.fixture
def unique() -> str:
    return uuid.uuid4().hex[:8]


@pytest.fixture
def stack_factory(broker: EmbeddedBroker, tmp_path: Path) -> Iterator[Callable[..., Stack]]:
    """Start a full pipeline (sink on chDB, worker, collector) on the session broker, with its
    own topics, consumer groups and chDB directory. Stopped at teardown."""
    started: list[Stack] = []

    def make(name: str = "", **env: str) -> Stack:
        tag = f"t{uuid.uuid4().hex[:8]}"
        home = tmp_path / (name or tag)
        settings = CollectorSettings(
            home=home, kafka_bootstrap=broker.bootstrap, broker_profile="embedded",
            topic_prefix=tag, topic_partitions=int(env.pop("partitions", "4")),
        )
        stack = Stack(settings, collector_port=free_port(), extra_env={
            "CLICKSTREAM_WORKER_ID": f"{tag}-streams",
            "CLICKSTREAM_SINK_GROUP": f"{tag}-sink",
            "CLICKSTREAM_SINK_FLUSH_SECONDS": "0.5",
            **env,
        })
        stack.start()
        started.append(stack)
        return stack

    yield make
    for stack in started:
        stack.stop()


def store_of(stack: Stack) -> RemoteStore:
    return RemoteStore(stack.services["sink"].url)
