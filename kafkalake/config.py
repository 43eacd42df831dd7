"""One typed settings object, read from the environment with local defaults.

Every host, port and path the platform uses comes from here: the CLI, the Spark jobs, the
DAGs and docker-compose.yaml all speak these variable names (``ENV_VARS``), so the local
embedded default and the multi-node shape differ only in values.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

#: The project checkout: the folder holding dags/, spark_jobs/, schemas/, jvm/.
_PACKAGE_HOME = Path(__file__).resolve().parent.parent

#: variable name -> (Settings field, human description). The README table and the
#: docker-compose test are generated from / checked against this mapping.
ENV_VARS: dict[str, tuple[str, str]] = {
    "KAFKALAKE_HOME": ("home", "project checkout holding dags/, spark_jobs/, schemas/, jvm/"),
    "KAFKALAKE_STATE_DIR": ("state_dir", "ignored folder for Kafka data, Airflow home, jars, checkpoints, logs"),
    "KAFKALAKE_BOOTSTRAP_SERVERS": ("bootstrap_servers", "Kafka bootstrap servers (host:port,...)"),
    "KAFKALAKE_KAFKA_CONTROLLER_PORT": ("kafka_controller_port", "KRaft controller port of the local broker"),
    "KAFKALAKE_LAKE_ROOT": ("lake_root", "root of the lake's files (the Iceberg warehouse by default)"),
    "KAFKALAKE_CATALOG": ("catalog_name", "name of the Iceberg catalog (Spark SQL: <catalog>.<namespace>.<table>)"),
    "KAFKALAKE_CATALOG_URI": ("catalog_uri", "JDBC URI of the Iceberg catalog (jdbc:sqlite:<file> or jdbc:postgresql://...)"),
    "KAFKALAKE_WAREHOUSE": ("warehouse", "where the Iceberg tables' files live (a path or file:/s3:// URI)"),
    "KAFKALAKE_NAMESPACE": ("namespace", "Iceberg namespace of the stream tables"),
    "KAFKALAKE_SCHEMAS_DIR": ("schemas_dir", "the schema registry folder (schemas/<subject>/vN.avsc)"),
    "KAFKALAKE_STREAMS_FILE": ("streams_file", "stream declarations (streams.yaml)"),
    "KAFKALAKE_SPARK_MASTER": ("spark_master", "Spark master URL (local[2], spark://host:7077)"),
    "KAFKALAKE_JARS_DIR": ("jars_dir", "Maven-managed jar cache (spark-connectors/, kafka-broker/)"),
    "KAFKALAKE_AIRFLOW_HOME": ("airflow_home", "AIRFLOW_HOME of the local Airflow"),
    "KAFKALAKE_AIRFLOW_HOST": ("airflow_host", "address the local Airflow api-server binds"),
    "KAFKALAKE_AIRFLOW_PORT": ("airflow_port", "port of the local Airflow UI / API"),
    "KAFKALAKE_COMPACTION_SCHEDULE": ("compaction_schedule", "schedule of the compaction DAG (cron or preset)"),
    "KAFKALAKE_REGISTRY_HOST": ("registry_host", "address the Confluent-compatible schema registry API binds"),
    "KAFKALAKE_REGISTRY_PORT": ("registry_port", "port of the schema registry API (Confluent's default: 8081)"),
    "KAFKALAKE_HOST_NAME": (
        "host_name",
        "this host's name in the status files (default: the hostname); a supervisor elsewhere "
        "judges a driver by its heartbeat, not its pid",
    ),
    "KAFKALAKE_CLUSTER": (
        "cluster",
        "true: a cluster on this machine (3 KRaft brokers, a Spark standalone master and 2 workers); "
        "`kafkalake up --cluster` sets it for its state folder",
    ),
    "KAFKALAKE_REGISTRY_ALLOW_REGISTER": (
        "registry_allow_register",
        "true: the registry API accepts POST /subjects/<s>/versions (default false: read-only)",
    ),
}


#: Addresses a locally started service may bind (the local broker refuses others).
LOCAL_HOSTS: frozenset[str] = frozenset({"127.0.0.1", "localhost", "0.0.0.0"})
#: Where throw-away platforms (tests, benchmarks) listen.
LOOPBACK = "127.0.0.1"


#: in the state folder while `kafkalake up --cluster` runs its platform (read by :meth:`Settings.from_env`)
CLUSTER_MARKER = "run/cluster"
#: the local cluster's Spark master unless KAFKALAKE_SPARK_MASTER names a spark:// one
CLUSTER_SPARK_MASTER = f"spark://{LOOPBACK}:7077"
#: brokers of the local cluster
CLUSTER_BROKERS = 3
#: the cluster's brokers and controllers listen on every second port from the first ones
CLUSTER_PORT_STEP = 2


def cluster_bootstrap(bootstrap: str) -> str:
    """The cluster's bootstrap list: as given when it names 3 brokers, else 3 brokers from the
    first one's port (9092 -> 9092, 9094, 9096; their controllers take 9093, 9095, 9097)."""
    servers = [s.strip() for s in bootstrap.split(",") if s.strip()]
    if len(servers) >= CLUSTER_BROKERS:
        return ",".join(servers[:CLUSTER_BROKERS])
    host, _, port = servers[0].rpartition(":")
    if not host or not port.isdigit():
        raise ConfigError(f"KAFKALAKE_BOOTSTRAP_SERVERS={bootstrap!r} is not host:port[,host:port]")
    return ",".join(f"{host}:{int(port) + CLUSTER_PORT_STEP * i}" for i in range(CLUSTER_BROKERS))


def _default_home() -> Path:
    return _PACKAGE_HOME


@dataclass(frozen=True, kw_only=True)
class Settings:
    """Where everything lives and how to reach it. Build with :meth:`from_env`."""

    home: Path = field(default_factory=_default_home)
    state_dir: Path = Path()
    bootstrap_servers: str = "127.0.0.1:9092"
    kafka_controller_port: int = 9093
    lake_root: Path = Path()
    catalog_name: str = "kafkalake"
    #: empty: a SQLite file in the state folder (:attr:`catalog_jdbc_uri`)
    catalog_uri: str = ""
    #: empty: ``<lake_root>/warehouse`` (:attr:`warehouse_location`)
    warehouse: str = ""
    namespace: str = "lake"
    schemas_dir: Path = Path()
    streams_file: Path = Path()
    spark_master: str = "local[2]"
    jars_dir: Path = Path()
    airflow_home: Path = Path()
    airflow_host: str = "127.0.0.1"
    airflow_port: int = 8080
    compaction_schedule: str = "@hourly"
    registry_host: str = "127.0.0.1"
    registry_port: int = 8081
    #: off by default: schemas enter the registry through git and the schema_migration DAG
    registry_allow_register: bool = False
    #: a local cluster (3 brokers: :mod:`kafkalake.platform.local_kafka`; a Spark master + 2 workers:
    #: :mod:`kafkalake.platform.local_spark`) instead of one broker and local[2]
    cluster: bool = False
    #: the name a driver writes into its status file; another host's supervisor cannot see its pid
    host_name: str = field(default_factory=socket.gethostname)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Read ``KAFKALAKE_*`` variables; unset paths derive from home and state_dir."""
        env = os.environ if environ is None else environ
        default = {f.name: f.default for f in fields(cls)}  # the scalar defaults, declared once above

        def get(name: str) -> str | None:
            value = env.get(name, "").strip()
            return value or None

        home = Path(get("KAFKALAKE_HOME") or _default_home()).resolve()
        state_dir = Path(get("KAFKALAKE_STATE_DIR") or home / ".kafkalake").resolve()
        try:
            controller_port = int(get("KAFKALAKE_KAFKA_CONTROLLER_PORT") or default["kafka_controller_port"])
            airflow_port = int(get("KAFKALAKE_AIRFLOW_PORT") or default["airflow_port"])
            registry_port = int(get("KAFKALAKE_REGISTRY_PORT") or default["registry_port"])
        except ValueError as exc:
            raise ConfigError(f"a KAFKALAKE_*_PORT variable is not an integer: {exc}") from None
        # a state folder whose platform was started with `kafkalake up --cluster` stays a cluster
        cluster = _flag("KAFKALAKE_CLUSTER", get("KAFKALAKE_CLUSTER"), (state_dir / CLUSTER_MARKER).is_file())
        bootstrap = get("KAFKALAKE_BOOTSTRAP_SERVERS") or default["bootstrap_servers"]
        spark_master = get("KAFKALAKE_SPARK_MASTER") or default["spark_master"]
        if cluster:
            bootstrap = cluster_bootstrap(bootstrap)
            spark_master = spark_master if spark_master.startswith("spark://") else CLUSTER_SPARK_MASTER
        return cls(
            home=home,
            state_dir=state_dir,
            bootstrap_servers=bootstrap,
            kafka_controller_port=controller_port,
            lake_root=Path(get("KAFKALAKE_LAKE_ROOT") or state_dir / "lake").resolve(),
            catalog_name=get("KAFKALAKE_CATALOG") or default["catalog_name"],
            catalog_uri=get("KAFKALAKE_CATALOG_URI") or "",
            warehouse=get("KAFKALAKE_WAREHOUSE") or "",
            namespace=get("KAFKALAKE_NAMESPACE") or default["namespace"],
            schemas_dir=Path(get("KAFKALAKE_SCHEMAS_DIR") or home / "schemas").resolve(),
            streams_file=Path(get("KAFKALAKE_STREAMS_FILE") or home / "streams.yaml").resolve(),
            spark_master=spark_master,
            jars_dir=Path(get("KAFKALAKE_JARS_DIR") or state_dir / "jars").resolve(),
            airflow_home=Path(get("KAFKALAKE_AIRFLOW_HOME") or state_dir / "airflow").resolve(),
            airflow_host=get("KAFKALAKE_AIRFLOW_HOST") or default["airflow_host"],
            airflow_port=airflow_port,
            compaction_schedule=get("KAFKALAKE_COMPACTION_SCHEDULE") or default["compaction_schedule"],
            registry_host=get("KAFKALAKE_REGISTRY_HOST") or default["registry_host"],
            registry_port=registry_port,
            registry_allow_register=_flag(
                "KAFKALAKE_REGISTRY_ALLOW_REGISTER", get("KAFKALAKE_REGISTRY_ALLOW_REGISTER"),
                default["registry_allow_register"],
            ),
            cluster=cluster,
            host_name=get("KAFKALAKE_HOST_NAME") or socket.gethostname(),
        )

    def with_overrides(self, **changes: object) -> Settings:
        """A copy with some fields changed (tests run a second platform beside the demo)."""
        return replace(self, **changes)  # type: ignore[arg-type]

    def to_env(self) -> dict[str, str]:
        """The ``KAFKALAKE_*`` variables that reproduce these settings in a child process."""
        return {name: _env_text(getattr(self, attr)) for name, (attr, _) in ENV_VARS.items()}

    # Derived locations: one place decides the layout of the state folder.
    @property
    def dags_dir(self) -> Path:
        return self.home / "dags"

    @property
    def plugins_dir(self) -> Path:
        return self.home / "plugins"

    @property
    def spark_jobs_dir(self) -> Path:
        return self.home / "spark_jobs"

    @property
    def run_dir(self) -> Path:
        """PID files of the processes kafkalake started."""
        return self.state_dir / "run"

    @property
    def logs_dir(self) -> Path:
        return self.state_dir / "logs"

    @property
    def kafka_data_dir(self) -> Path:
        return self.state_dir / "kafka" / "data"

    @property
    def kafka_config_dir(self) -> Path:
        return self.state_dir / "kafka" / "config"

    @property
    def bootstrap_host_port(self) -> tuple[str, int]:
        """The first bootstrap server: what the local broker listens on."""
        first = self.bootstrap_servers.split(",")[0].strip()
        host, _, port = first.rpartition(":")
        if not host or not port.isdigit():
            raise ConfigError(
                f"KAFKALAKE_BOOTSTRAP_SERVERS={self.bootstrap_servers!r} is not host:port[,host:port]"
            )
        return host, int(port)

    @property
    def kafka_nodes(self) -> list[tuple[int, str, int, int]]:
        """(node id, host, broker port, controller port) of each local broker: one, or the
        cluster's three (controllers on every second port from KAFKALAKE_KAFKA_CONTROLLER_PORT)."""
        if not self.cluster:
            host, port = self.bootstrap_host_port
            return [(1, host, port, self.kafka_controller_port)]
        nodes = []
        for i, server in enumerate(cluster_bootstrap(self.bootstrap_servers).split(",")):
            host, _, port = server.rpartition(":")
            nodes.append((i + 1, host, int(port), self.kafka_controller_port + CLUSTER_PORT_STEP * i))
        return nodes

    @property
    def replication_factor(self) -> int:
        """Replicas of a new topic: every broker of the cluster, else the one broker."""
        return CLUSTER_BROKERS if self.cluster else 1

    @property
    def catalog_jdbc_uri(self) -> str:
        """The catalog's JDBC URI: the setting, else the embedded SQLite file of this state folder."""
        return self.catalog_uri or f"jdbc:sqlite:{self.state_dir / 'catalog' / 'iceberg.db'}"

    @property
    def warehouse_location(self) -> str:
        return self.warehouse or str(self.lake_root / "warehouse")

    @property
    def airflow_url(self) -> str:
        return f"http://{self.airflow_host}:{self.airflow_port}"

    @property
    def registry_url(self) -> str:
        """What a Confluent client's ``url`` setting points at."""
        return f"http://{self.registry_host}:{self.registry_port}"


_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})


def _flag(name: str, value: str | None, default: bool) -> bool:
    """An on/off variable; anything but the usual spellings is refused, not read as false."""
    if value is None:
        return default
    text = value.lower()
    if text in _TRUE | _FALSE:
        return text in _TRUE
    raise ConfigError(f"{name}={value!r} is not a boolean; use true or false")


def _env_text(value: object) -> str:
    """A setting as its variable's text (booleans as true/false, which :func:`_flag` reads back)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


class ConfigError(ValueError):
    """A setting has a value the platform cannot use; the message says which and why."""


def get_settings() -> Settings:
    """The settings of this process (read afresh: cheap, and tests can change the env)."""
    return Settings.from_env()
