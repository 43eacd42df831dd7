"""The local Apache Kafka broker: KRaft, combined broker+controller, run from Maven's jars.

Data and logs live under ``<state_dir>/kafka``; the storage is formatted once by the project
(``kafka.tools.StorageTool format``) with a cluster id kept beside the config, so a restart
keeps topics and offsets.
"""

from __future__ import annotations

import base64
import logging
import subprocess
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from kafkalake.config import LOCAL_HOSTS, Settings
from kafkalake.errors import ServiceError, SetupError
from kafkalake.platform.processes import ManagedProcess, require_free_ports, service_state
from kafkalake.spark import jvm

log = logging.getLogger(__name__)

SERVICE = "kafka"
START_TIMEOUT_S = 90.0
HEAP = "-Xmx1g"


@dataclass(frozen=True)
class KafkaStatus:
    running: bool
    answering: bool
    pid: int | None
    bootstrap_servers: str

    @property
    def state(self) -> str:
        return service_state(self.running, self.answering)


def _process(settings: Settings) -> ManagedProcess:
    return ManagedProcess.for_service(settings, SERVICE)


def server_properties(settings: Settings) -> str:
    """server.properties of a single-node KRaft cluster (replication factors of 1)."""
    host, port = settings.bootstrap_host_port
    ctrl = settings.kafka_controller_port
    return "\n".join(
        [
            "# written by kafkalake (kafkalake/kafka_local.py); edits are overwritten on start",
            "process.roles=broker,controller",
            "node.id=1",
            f"controller.quorum.voters=1@{host}:{ctrl}",
            f"listeners=PLAINTEXT://{host}:{port},CONTROLLER://{host}:{ctrl}",
            f"advertised.listeners=PLAINTEXT://{host}:{port}",
            "controller.listener.names=CONTROLLER",
            "inter.broker.listener.name=PLAINTEXT",
            "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            f"log.dirs={settings.kafka_data_dir}",
            "num.partitions=2",
            "auto.create.topics.enable=false",
            "offsets.topic.replication.factor=1",
            "offsets.topic.num.partitions=4",
            "transaction.state.log.replication.factor=1",
            "transaction.state.log.min.isr=1",
            "share.coordinator.state.topic.replication.factor=1",
            "share.coordinator.state.topic.min.isr=1",
            "group.initial.rebalance.delay.ms=0",
            "log.retention.hours=168",
            "",
        ]
    )


LOG4J2 = """\
# written by kafkalake: broker logs go to stdout, which kafkalake appends to logs/kafka.log
Configuration:
  Appenders:
    Console:
      name: STDOUT
      PatternLayout:
        pattern: "[%d] %p %m (%c)%n"
  Loggers:
    Root:
      level: INFO
      AppenderRef:
        - ref: STDOUT
    Logger:
      - name: kafka.request.logger
        level: WARN
      - name: org.apache.kafka.controller
        level: INFO
      - name: state.change.logger
        level: WARN
"""


def _java_cmd(settings: Settings, java: Path, main: str, *args: str) -> list[str]:
    classpath = ":".join(str(jar) for jar in jvm.module_jars(settings, jvm.KAFKA_BROKER))
    return [
        str(java),
        HEAP,
        "-Xms256m",
        "-XX:+UseG1GC",
        "-Djava.awt.headless=true",
        f"-Dlog4j2.configurationFile={settings.kafka_config_dir / 'log4j2.yaml'}",
        f"-Dkafka.logs.dir={settings.logs_dir}",
        "-cp",
        classpath,
        main,
        *args,
    ]


def _new_cluster_id(random_bytes: Callable[[], bytes] = lambda: uuid.uuid4().bytes) -> str:
    """Kafka's Uuid text form: 16 random bytes, URL-safe base64 without padding. Like Kafka's
    ``Uuid.randomUuid``, never one that starts with "-" (1 in 64): the storage tool's argument
    parser takes such an id for an option and refuses to format."""
    while True:
        text = base64.urlsafe_b64encode(random_bytes()).decode().rstrip("=")
        if not text.startswith("-"):
            return text


def format_storage(settings: Settings, java: Path) -> None:
    """Write config files and format the log dir once (KRaft needs meta.properties)."""
    cfg = settings.kafka_config_dir
    cfg.mkdir(parents=True, exist_ok=True)
    (cfg / "server.properties").write_text(server_properties(settings))
    (cfg / "log4j2.yaml").write_text(LOG4J2)
    if (settings.kafka_data_dir / "meta.properties").exists():
        return
    cluster_id_file = cfg / "cluster.id"
    if not cluster_id_file.exists():
        cluster_id_file.write_text(_new_cluster_id() + "\n")
    cluster_id = cluster_id_file.read_text().strip()
    settings.kafka_data_dir.mkdir(parents=True, exist_ok=True)
    cmd = _java_cmd(
        settings, java, "kafka.tools.StorageTool",
        # "=": a cluster.id written before ids starting with "-" were avoided still parses
        "format", f"--cluster-id={cluster_id}", "-c", str(cfg / "server.properties"), "--ignore-formatted",
    )
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
    if result.returncode != 0:
        lines = [ln.strip() for ln in (result.stderr + result.stdout).splitlines() if ln.strip()]
        telling = [ln for ln in lines if "ERROR" in ln or "Exception" in ln or "rror:" in ln]
        detail = (telling or lines or [f"exit code {result.returncode}"])[-1][:400]
        raise ServiceError(f"formatting Kafka storage in {settings.kafka_data_dir} failed: {detail}")


def broker_answers(bootstrap_servers: str, timeout: float = 2.0) -> bool:
    """True when the broker answers a metadata request (the readiness check)."""
    from confluent_kafka.admin import AdminClient

    admin = AdminClient(
        {
            "bootstrap.servers": bootstrap_servers,
            "socket.connection.setup.timeout.ms": int(timeout * 1000),
            "log_level": 0,  # a down broker is an expected answer here, not noise
            "logger": logging.getLogger("kafkalake.kafka.probe"),
        }
    )
    try:
        metadata = admin.list_topics(timeout=timeout)
    except Exception:  # KafkaException on timeout/transport errors: not ready yet
        return False
    return bool(metadata.brokers)


def status(settings: Settings) -> KafkaStatus:
    proc = _process(settings)
    pid = proc.main_pid()
    running = bool(proc.pids())
    answering = broker_answers(settings.bootstrap_servers, timeout=1.5) if running else False
    return KafkaStatus(running=running, answering=answering, pid=pid, bootstrap_servers=settings.bootstrap_servers)


def start(settings: Settings) -> KafkaStatus:
    """Start the broker and wait until it answers a metadata request; idempotent."""
    proc = _process(settings)
    if proc.pids():
        if broker_answers(settings.bootstrap_servers, timeout=5):
            log.info("kafka already running (pid %s)", proc.main_pid())
            return status(settings)
        raise ServiceError(
            f"a kafkalake Kafka process is running but {settings.bootstrap_servers} does not answer: "
            f"run `kafkalake kafka stop` and start again (log: {proc.log_file})"
        )
    java = jvm.find_java()
    host, port = settings.bootstrap_host_port
    if host not in LOCAL_HOSTS:
        raise SetupError(
            f"KAFKALAKE_BOOTSTRAP_SERVERS points at {host}: the local broker only runs on this "
            "machine; point it at a loopback address, or don't start a local broker"
        )
    require_free_ports(
        "kafka",
        [
            (host, port, "KAFKALAKE_BOOTSTRAP_SERVERS"),
            (host, settings.kafka_controller_port, "KAFKALAKE_KAFKA_CONTROLLER_PORT"),
        ],
    )
    format_storage(settings, java)
    cmd = _java_cmd(settings, java, "kafka.Kafka", str(settings.kafka_config_dir / "server.properties"))
    proc.start(cmd, env=_child_env(settings))
    proc.wait_ready(
        lambda: broker_answers(settings.bootstrap_servers, timeout=1.0),
        timeout=START_TIMEOUT_S,
        what="answering a metadata request",
    )
    return status(settings)


def stop(settings: Settings) -> bool:
    """Clean shutdown (SIGTERM lets the broker close its logs); True if it was running."""
    return _process(settings).stop(timeout=60)


def _child_env(settings: Settings) -> dict[str, str]:
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith("KAFKA_")}
    env.update(settings.to_env())
    return env
