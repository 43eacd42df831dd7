"""The local Apache Kafka brokers: KRaft, combined broker+controller, run from Maven's jars.

One broker (replication 1), or with ``KAFKALAKE_CLUSTER`` three, each a voter of the KRaft
quorum (replication 3, ``min.insync.replicas=2``: one broker may die without losing an
acknowledged record). Data and logs live under ``<state_dir>/kafka`` (``kafka/node-<id>`` for
a cluster's); the storage is formatted once by the project (``kafka.tools.StorageTool format``)
with a cluster id kept beside the config, so a restart keeps topics and offsets.
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


@dataclass(frozen=True)
class Node:
    """One local broker (+ KRaft controller)."""

    node_id: int
    host: str
    port: int
    controller_port: int
    service: str
    data_dir: Path
    config_dir: Path

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"


def nodes(settings: Settings) -> list[Node]:
    """The brokers this state folder runs: ``kafka``, or ``kafka-1`` .. ``kafka-3`` for a cluster."""
    if not settings.cluster:
        (node_id, host, port, ctrl), = settings.kafka_nodes
        return [Node(node_id, host, port, ctrl, SERVICE, settings.kafka_data_dir, settings.kafka_config_dir)]
    base = settings.state_dir / "kafka"
    return [Node(node_id, host, port, ctrl, f"{SERVICE}-{node_id}", base / f"node-{node_id}" / "data",
                 base / f"node-{node_id}" / "config") for node_id, host, port, ctrl in settings.kafka_nodes]


def node(settings: Settings, node_id: int) -> Node:
    for candidate in nodes(settings):
        if candidate.node_id == node_id:
            return candidate
    raise SetupError(f"no Kafka broker {node_id} here (brokers: {', '.join(str(n.node_id) for n in nodes(settings))})")


def _process(settings: Settings, service: str = SERVICE) -> ManagedProcess:
    return ManagedProcess.for_service(settings, service)


def server_properties(settings: Settings, broker: Node | None = None) -> str:
    """server.properties of one broker: a single-node cluster (replication factors of 1) or one
    of the cluster's three voters (internal topics on all three, ``min.insync.replicas=2``)."""
    all_nodes = nodes(settings)
    broker = broker or all_nodes[0]
    replicas, min_isr = (len(all_nodes), len(all_nodes) - 1) if settings.cluster else (1, 1)
    voters = ",".join(f"{n.node_id}@{n.host}:{n.controller_port}" for n in all_nodes)
    host, port, ctrl = broker.host, broker.port, broker.controller_port
    return "\n".join(
        [
            "# written by kafkalake (kafkalake/platform/local_kafka.py); edits are overwritten on start",
            "process.roles=broker,controller",
            f"node.id={broker.node_id}",
            f"controller.quorum.voters={voters}",
            f"listeners=PLAINTEXT://{host}:{port},CONTROLLER://{host}:{ctrl}",
            f"advertised.listeners=PLAINTEXT://{host}:{port}",
            "controller.listener.names=CONTROLLER",
            "inter.broker.listener.name=PLAINTEXT",
            "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            f"log.dirs={broker.data_dir}",
            "num.partitions=2",
            "auto.create.topics.enable=false",
            f"default.replication.factor={replicas}",
            f"min.insync.replicas={min_isr}",
            f"offsets.topic.replication.factor={replicas}",
            "offsets.topic.num.partitions=4",
            f"transaction.state.log.replication.factor={replicas}",
            f"transaction.state.log.min.isr={min_isr}",
            f"share.coordinator.state.topic.replication.factor={replicas}",
            f"share.coordinator.state.topic.min.isr={min_isr}",
            "group.initial.rebalance.delay.ms=0",
            "log.retention.hours=168",
            # a killed broker's replicas are out of sync after 10 s, so acks=all needs only the others
            "replica.lag.time.max.ms=10000",
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


def _java_cmd(settings: Settings, java: Path, main: str, *args: str, config_dir: Path | None = None) -> list[str]:
    classpath = ":".join(str(jar) for jar in jvm.module_jars(settings, jvm.KAFKA_BROKER))
    heap = "-Xmx512m" if settings.cluster else HEAP  # three brokers on one machine
    return [
        str(java),
        heap,
        "-Xms256m",
        "-XX:+UseG1GC",
        "-Djava.awt.headless=true",
        f"-Dlog4j2.configurationFile={(config_dir or settings.kafka_config_dir) / 'log4j2.yaml'}",
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


def format_storage(settings: Settings, java: Path, broker: Node | None = None) -> None:
    """Write config files and format the log dir once (KRaft needs meta.properties). The
    brokers of a cluster share one cluster id (kept in the first broker's config folder)."""
    broker = broker or nodes(settings)[0]
    cfg = broker.config_dir
    cfg.mkdir(parents=True, exist_ok=True)
    (cfg / "server.properties").write_text(server_properties(settings, broker))
    (cfg / "log4j2.yaml").write_text(LOG4J2)
    if (broker.data_dir / "meta.properties").exists():
        return
    cluster_id_file = nodes(settings)[0].config_dir / "cluster.id"
    cluster_id_file.parent.mkdir(parents=True, exist_ok=True)
    if not cluster_id_file.exists():
        cluster_id_file.write_text(_new_cluster_id() + "\n")
    cluster_id = cluster_id_file.read_text().strip()
    broker.data_dir.mkdir(parents=True, exist_ok=True)
    cmd = _java_cmd(
        settings, java, "kafka.tools.StorageTool",
        # "=": a cluster.id written before ids starting with "-" were avoided still parses
        "format", f"--cluster-id={cluster_id}", "-c", str(cfg / "server.properties"), "--ignore-formatted",
        config_dir=cfg,
    )
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
    if result.returncode != 0:
        lines = [ln.strip() for ln in (result.stderr + result.stdout).splitlines() if ln.strip()]
        telling = [ln for ln in lines if "ERROR" in ln or "Exception" in ln or "rror:" in ln]
        detail = (telling or lines or [f"exit code {result.returncode}"])[-1][:400]
        raise ServiceError(f"formatting Kafka storage in {broker.data_dir} failed: {detail}")


def broker_answers(bootstrap_servers: str, timeout: float = 2.0, broker_id: int | None = None) -> bool:
    """True when the broker answers a metadata request (the readiness check); with
    ``broker_id``, when that broker is also in the cluster's metadata (it joined)."""
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
    return bool(metadata.brokers) and (broker_id is None or broker_id in metadata.brokers)


def status(settings: Settings) -> KafkaStatus:
    """The broker, or the cluster as a whole (running: every broker; answering: the cluster)."""
    procs = [_process(settings, n.service) for n in nodes(settings)]
    running = all(bool(p.pids()) for p in procs)
    some = any(bool(p.pids()) for p in procs)
    answering = broker_answers(settings.bootstrap_servers, timeout=1.5) if some else False
    return KafkaStatus(running=running, answering=answering, pid=procs[0].main_pid(),
                       bootstrap_servers=settings.bootstrap_servers)


def node_status(settings: Settings, broker: Node) -> KafkaStatus:
    proc = _process(settings, broker.service)
    running = bool(proc.pids())
    answering = broker_answers(broker.address, timeout=1.5, broker_id=broker.node_id) if running else False
    return KafkaStatus(running=running, answering=answering, pid=proc.main_pid(), bootstrap_servers=broker.address)


def start(settings: Settings) -> KafkaStatus:
    """Start the broker (or the cluster's brokers) and wait until it answers a metadata
    request (a cluster: every broker is in the metadata); idempotent."""
    java = None
    started: list[tuple[Node, ManagedProcess]] = []
    for broker in nodes(settings):
        proc = _process(settings, broker.service)
        if proc.pids():
            if broker_answers(broker.address, timeout=5):
                log.info("%s already running (pid %s)", broker.service, proc.main_pid())
                continue
            raise ServiceError(
                f"a kafkalake Kafka process ({broker.service}) is running but {broker.address} does not answer: "
                f"run `kafkalake down` and start again (log: {proc.log_file})"
            )
        if broker.host not in LOCAL_HOSTS:
            raise SetupError(
                f"KAFKALAKE_BOOTSTRAP_SERVERS points at {broker.host}: the local broker only runs on this "
                "machine; point it at a loopback address, or don't start a local broker"
            )
        require_free_ports(
            broker.service,
            [
                (broker.host, broker.port, "KAFKALAKE_BOOTSTRAP_SERVERS"),
                (broker.host, broker.controller_port, "KAFKALAKE_KAFKA_CONTROLLER_PORT"),
            ],
        )
        java = java or jvm.find_java()
        format_storage(settings, java, broker)
        cmd = _java_cmd(settings, java, "kafka.Kafka", str(broker.config_dir / "server.properties"),
                        config_dir=broker.config_dir)
        proc.start(cmd, env=_child_env(settings))
        started.append((broker, proc))
    # a cluster's quorum needs two voters up: start all of them, then wait for each
    try:
        for broker, proc in started:
            proc.wait_ready(
                lambda b=broker: broker_answers(b.address, timeout=1.0, broker_id=b.node_id),
                timeout=START_TIMEOUT_S,
                what="answering a metadata request",
            )
    except ServiceError:
        for _broker, proc in started:
            proc.stop(timeout=10)
        raise
    return status(settings)


def start_node(settings: Settings, node_id: int) -> KafkaStatus:
    """Start one broker of the cluster again (after it died); it rejoins and catches up."""
    broker = node(settings, node_id)
    proc = _process(settings, broker.service)
    if not proc.pids():
        java = jvm.find_java()
        format_storage(settings, java, broker)
        proc.start(_java_cmd(settings, java, "kafka.Kafka", str(broker.config_dir / "server.properties"),
                             config_dir=broker.config_dir), env=_child_env(settings))
        proc.wait_ready(lambda: broker_answers(broker.address, timeout=1.0, broker_id=broker.node_id),
                        timeout=START_TIMEOUT_S, what="answering a metadata request")
    return node_status(settings, broker)


def stop(settings: Settings) -> bool:
    """Clean shutdown (SIGTERM lets a broker close its logs); True if something was running.
    Stops every broker this state folder may have started, single or cluster."""
    from concurrent.futures import ThreadPoolExecutor

    services = sorted({n.service for n in nodes(settings)} | {SERVICE} | {f"{SERVICE}-{i}" for i in (1, 2, 3)})
    # a cluster's brokers all at once: the last one stopped alone would wait for a quorum that left
    with ThreadPoolExecutor(len(services)) as pool:
        stopped = list(pool.map(lambda service: _process(settings, service).stop(timeout=60), services))
    return any(stopped)


def _child_env(settings: Settings) -> dict[str, str]:
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith("KAFKA_")}
    env.update(settings.to_env())
    return env
