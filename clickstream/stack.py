"""The whole pipeline as child processes: embedded broker (unless Kafka is configured),
sink, stream worker and collector. `clickstream up` and the integration tests both use it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from clickstream.embedded_broker import EmbeddedBroker, free_port
from clickstream.proc import die_with_parent
from clickstream.runstate import clear_state, write_state
from clickstream.settings import CommonSettings
from clickstream.topics import create_topics_sync


class StackError(RuntimeError):
    """A service did not come up; the message names it and its log file."""


@dataclass
class Service:
    name: str
    module: str
    port: int
    health_path: str
    env: dict[str, str]
    log_path: Path
    process: subprocess.Popen[bytes] | None = None
    restarts: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")  # noqa: SIM115 - owned by the child
        self.process = subprocess.Popen(
            [sys.executable, "-m", self.module], env=self.env, stdout=log,
            stderr=subprocess.STDOUT, start_new_session=True, preexec_fn=die_with_parent,
        )
        log.close()

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def healthy(self) -> bool:
        try:
            with urllib.request.urlopen(self.url + self.health_path, timeout=1) as resp:
                return bool(resp.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    def wait_healthy(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive():
                raise StackError(f"{self.name} exited during start; see {self.log_path}:\n"
                                 + tail(self.log_path))
            if self.healthy():
                return
            time.sleep(0.2)
        raise StackError(f"{self.name} not healthy after {timeout:.0f} s; see {self.log_path}")

    def signal(self, sig: int) -> None:
        if self.alive():
            assert self.process is not None
            os.killpg(self.process.pid, sig)

    def stop(self, timeout: float = 20.0) -> None:
        if not self.alive():
            return
        assert self.process is not None
        self.signal(signal.SIGTERM)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.signal(signal.SIGKILL)
            self.process.wait(5)


def tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return "(no log)"


@dataclass
class Stack:
    """Start order: broker, topics, sink (migrations), worker, collector."""

    settings: CommonSettings
    collector_port: int = 8080
    collector_host: str = "127.0.0.1"
    extra_env: dict[str, str] = field(default_factory=dict)
    broker: EmbeddedBroker | None = None
    services: dict[str, Service] = field(default_factory=dict)

    @property
    def home(self) -> Path:
        return self.settings.home.resolve()

    @property
    def bootstrap(self) -> str:
        if self.broker:
            return self.broker.bootstrap
        assert self.settings.kafka_bootstrap
        return self.settings.kafka_bootstrap

    @property
    def collector_url(self) -> str:
        return f"http://{self.collector_host}:{self.collector_port}"

    def _env(self) -> dict[str, str]:
        # the user's CLICKSTREAM_* settings (sites file, session rules, ...) reach every
        # service; where the stack put things (home, broker, ports) overrides them
        env = dict(os.environ)
        env.update({
            "CLICKSTREAM_HOME": str(self.home),
            "CLICKSTREAM_KAFKA_BOOTSTRAP": self.bootstrap,
            "CLICKSTREAM_BROKER_PROFILE": "embedded" if self.settings.embedded_broker
            else "kafka",
            "CLICKSTREAM_TOPIC_PREFIX": self.settings.topic_prefix,
            "CLICKSTREAM_TOPIC_PARTITIONS": str(self.settings.topic_partitions),
            "CLICKSTREAM_LOG_LEVEL": self.settings.log_level,
            "PYTHONUNBUFFERED": "1",
        })
        if self.settings.clickhouse_url:
            env["CLICKSTREAM_CLICKHOUSE_URL"] = self.settings.clickhouse_url
        env.update(self.extra_env)
        return env

    def start(self, on_step: object = None) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        logs = self.home / "logs"
        logs.mkdir(exist_ok=True)
        say = on_step if callable(on_step) else (lambda _msg: None)
        if not self.settings.kafka_bootstrap:
            say("starting embedded Kafka-protocol broker (Tansu)")
            self.broker = EmbeddedBroker(log_path=logs / "broker.log").start()
        topic_settings = self.settings.model_copy(update={"kafka_bootstrap": self.bootstrap})
        create_topics_sync(topic_settings)
        base = self._env()
        sink_port, worker_port = free_port(), free_port()
        self.services = {
            "sink": Service("sink", "sinks", sink_port, "/healthz",
                            {**base, "CLICKSTREAM_SINK_PORT": str(sink_port)},
                            logs / "sink.log"),
            "worker": Service("worker", "streams", worker_port, "/healthz",
                              {**base, "CLICKSTREAM_WORKER_WEB_PORT": str(worker_port)},
                              logs / "worker.log"),
            "collector": Service("collector", "producers.collector", self.collector_port,
                                 "/readyz",
                                 {**base, "CLICKSTREAM_COLLECTOR_PORT": str(self.collector_port),
                                  "CLICKSTREAM_COLLECTOR_HOST": self.collector_host},
                                 logs / "collector.log"),
        }
        try:
            for name in ("sink", "worker", "collector"):
                say(f"starting {name}")
                self.services[name].start()
                self.services[name].wait_healthy()
        except BaseException:
            self.stop()
            raise
        self.write_state()

    def write_state(self) -> None:
        write_state(self.home, {
            "pid": os.getpid(),
            "started_at": time.time(),
            "broker": {"bootstrap": self.bootstrap, "embedded": self.broker is not None},
            "services": {n: {"url": s.url, "pid": s.process.pid if s.process else None,
                             "log": str(s.log_path)} for n, s in self.services.items()},
            "collector_url": self.collector_url,
        })

    def add_worker(self) -> Service:
        """Start one more stream worker (same group: partitions are split between them)."""
        base = self.services["worker"]
        port = free_port()
        name = f"worker{sum(1 for n in self.services if n.startswith('worker')) + 1}"
        svc = Service(name, "streams", port, "/healthz",
                      {**base.env, "CLICKSTREAM_WORKER_WEB_PORT": str(port)},
                      base.log_path.with_name(f"{name}.log"))
        self.services[name] = svc
        svc.start()
        svc.wait_healthy()
        self.write_state()
        return svc

    def restart(self, name: str) -> None:
        svc = self.services[name]
        svc.stop()
        svc.restarts += 1
        svc.start()
        svc.wait_healthy()
        self.write_state()

    def kill(self, name: str) -> None:
        """SIGKILL a service (fault tests)."""
        svc = self.services[name]
        svc.signal(signal.SIGKILL)
        if svc.process:
            svc.process.wait(10)

    def stop(self) -> None:
        """Collector first (no new input), then workers, then the sink (flushes last)."""
        order = sorted(self.services, key=lambda n: (n != "collector", n == "sink", n))
        for name in order:
            self.services[name].stop()
        if self.broker:
            self.broker.stop()
            self.broker = None
        clear_state(self.home)
