"""One typed settings object, read from the environment with local defaults.

Every host, port and path the platform uses comes from here: the CLI, the Spark jobs, the
DAGs and docker-compose.yaml all speak these variable names (``ENV_VARS``), so the local
embedded default and the multi-node shape differ only in values.
"""

from __future__ import annotations

import os
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
    "KAFKALAKE_LAKE_ROOT": ("lake_root", "root of the landing, lake and quarantine zones"),
    "KAFKALAKE_SCHEMAS_DIR": ("schemas_dir", "the schema registry folder (schemas/<subject>/vN.avsc)"),
    "KAFKALAKE_STREAMS_FILE": ("streams_file", "stream declarations (streams.yaml)"),
    "KAFKALAKE_SPARK_MASTER": ("spark_master", "Spark master URL (local[2], spark://host:7077)"),
    "KAFKALAKE_JARS_DIR": ("jars_dir", "Maven-managed jar cache (spark-connectors/, kafka-broker/)"),
    "KAFKALAKE_AIRFLOW_HOME": ("airflow_home", "AIRFLOW_HOME of the local Airflow"),
    "KAFKALAKE_AIRFLOW_HOST": ("airflow_host", "address the local Airflow api-server binds"),
    "KAFKALAKE_AIRFLOW_PORT": ("airflow_port", "port of the local Airflow UI / API"),
    "KAFKALAKE_COMPACTION_SCHEDULE": ("compaction_schedule", "schedule of the compaction DAG (cron or preset)"),
}


#: Addresses a locally started service may bind (the local broker refuses others).
LOCAL_HOSTS: frozenset[str] = frozenset({"127.0.0.1", "localhost", "0.0.0.0"})
#: Where throw-away platforms (tests, benchmarks) listen.
LOOPBACK = "127.0.0.1"


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
    schemas_dir: Path = Path()
    streams_file: Path = Path()
    spark_master: str = "local[2]"
    jars_dir: Path = Path()
    airflow_home: Path = Path()
    airflow_host: str = "127.0.0.1"
    airflow_port: int = 8080
    compaction_schedule: str = "@hourly"

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
        except ValueError as exc:
            raise ConfigError(f"a KAFKALAKE_*_PORT variable is not an integer: {exc}") from None
        return cls(
            home=home,
            state_dir=state_dir,
            bootstrap_servers=get("KAFKALAKE_BOOTSTRAP_SERVERS") or default["bootstrap_servers"],
            kafka_controller_port=controller_port,
            lake_root=Path(get("KAFKALAKE_LAKE_ROOT") or state_dir / "lake").resolve(),
            schemas_dir=Path(get("KAFKALAKE_SCHEMAS_DIR") or home / "schemas").resolve(),
            streams_file=Path(get("KAFKALAKE_STREAMS_FILE") or home / "streams.yaml").resolve(),
            spark_master=get("KAFKALAKE_SPARK_MASTER") or default["spark_master"],
            jars_dir=Path(get("KAFKALAKE_JARS_DIR") or state_dir / "jars").resolve(),
            airflow_home=Path(get("KAFKALAKE_AIRFLOW_HOME") or state_dir / "airflow").resolve(),
            airflow_host=get("KAFKALAKE_AIRFLOW_HOST") or default["airflow_host"],
            airflow_port=airflow_port,
            compaction_schedule=get("KAFKALAKE_COMPACTION_SCHEDULE") or default["compaction_schedule"],
        )

    def with_overrides(self, **changes: object) -> Settings:
        """A copy with some fields changed (tests run a second platform beside the demo)."""
        return replace(self, **changes)  # type: ignore[arg-type]

    def to_env(self) -> dict[str, str]:
        """The ``KAFKALAKE_*`` variables that reproduce these settings in a child process."""
        return {name: str(getattr(self, attr)) for name, (attr, _) in ENV_VARS.items()}

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
    def airflow_url(self) -> str:
        return f"http://{self.airflow_host}:{self.airflow_port}"


class ConfigError(ValueError):
    """A setting has a value the platform cannot use; the message says which and why."""


def get_settings() -> Settings:
    """The settings of this process (read afresh: cheap, and tests can change the env)."""
    return Settings.from_env()
