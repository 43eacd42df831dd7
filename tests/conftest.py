"""Fixtures that start real components for the tests that need them.

The tests never touch the demo platform: they run a second one in a temporary state folder
on free ports (Kafka, KRaft controller, Airflow), sharing only the Maven jar cache. Whatever a
fixture or test starts there is stopped by its teardown; and at the end of the session, every
platform :func:`make_settings` handed out is stopped again, whole sessions, in case one was not.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from kafkalake.config import Settings, get_settings
from kafkalake.platform.processes import free_port_run, free_ports

REPO = Path(__file__).resolve().parents[1]
#: The developer's / CI's settings as the suite started: only the jar cache is shared.
BASE_SETTINGS = get_settings()
#: Every throw-away platform of this test run, for the safety net in pytest_sessionfinish.
_PLATFORMS: list[Settings] = []


def make_settings(state_dir: Path) -> Settings:
    """Settings of a throw-away platform: own state folder and ports, shared jar cache."""
    kafka_port, controller_port, airflow_port, registry_port = free_ports(4)
    base = BASE_SETTINGS
    settings = Settings.from_env(
        {
            "KAFKALAKE_HOME": str(REPO),
            "KAFKALAKE_STATE_DIR": str(state_dir),
            "KAFKALAKE_JARS_DIR": str(base.jars_dir),
            "KAFKALAKE_BOOTSTRAP_SERVERS": f"127.0.0.1:{kafka_port}",
            "KAFKALAKE_KAFKA_CONTROLLER_PORT": str(controller_port),
            "KAFKALAKE_AIRFLOW_PORT": str(airflow_port),
            "KAFKALAKE_REGISTRY_PORT": str(registry_port),
        }
    )
    _PLATFORMS.append(settings)
    return settings


def make_cluster_settings(state_dir: Path) -> Settings:
    """Settings of a throw-away local cluster (3 brokers, a Spark master + 2 workers) on free ports."""
    from kafkalake.config import CLUSTER_PORT_STEP

    settings = make_settings(state_dir)
    brokers = ",".join(f"127.0.0.1:{p}" for p in free_ports(3))
    settings = settings.with_overrides(
        cluster=True, bootstrap_servers=brokers, kafka_controller_port=free_port_run(CLUSTER_PORT_STEP, 3),
        spark_master=f"spark://127.0.0.1:{free_port_run(1, 4)}")
    _PLATFORMS.append(settings)
    return settings


def stop_platform(settings: Settings) -> list[str]:
    """Stop the platform's Airflow, registry API and Kafka (their whole sessions); the services that ran."""
    from kafkalake.platform import local_airflow as airflow_local
    from kafkalake.platform import local_kafka as kafka_local
    from kafkalake.platform import local_registry as registry_local
    from kafkalake.platform import local_spark as spark_local

    if not settings.state_dir.exists():  # nothing was ever started there
        return []
    services = (("airflow", airflow_local.stop), ("registry", registry_local.stop), ("spark", spark_local.stop),
                ("kafka", kafka_local.stop))
    return [name for name, stop in services if stop(settings)]


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Safety net: nothing of a test platform outlives the session, whatever failed."""
    for settings in _PLATFORMS:
        if stopped := stop_platform(settings):
            print(f"\nkafkalake tests: stopped leftover {', '.join(stopped)} of {settings.state_dir}", file=sys.stderr)


def cli_env(settings: Settings, **extra: str) -> dict[str, str]:
    """Environment for running the `kafkalake` CLI against ``settings`` in a subprocess."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KAFKALAKE_", "AIRFLOW"))}
    env.update(settings.to_env())
    env.update(extra)
    return env


def run_cli(
    settings: Settings, *args: str, env: dict[str, str] | None = None, timeout: float = 400
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "kafkalake.cli", *args],
        env=env if env is not None else cli_env(settings),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def failure_lines(result: subprocess.CompletedProcess[str], tail: int = 2000) -> str:
    """What a failed CLI run said: its error and exception lines first (a Java trace buries
    them), then the end of its output."""
    text = result.stdout + result.stderr
    said = [line for line in text.splitlines() if "error:" in line or "Exception:" in line or "Error:" in line]
    return "\n".join(said[:20]) + "\n--- output ends:\n" + text[-tail:]


@pytest.fixture(scope="session")
def platform_settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    settings = make_settings(tmp_path_factory.mktemp("platform") / "state")
    jars = settings.jars_dir
    assert any((jars / "spark-connectors").glob("*.jar")) and any((jars / "kafka-broker").glob("*.jar")), (
        f"no Maven jars in {jars}: run `make jars` (make test does it first)"
    )
    return settings


@pytest.fixture(scope="session")
def kafka(platform_settings: Settings) -> Iterator[Settings]:
    """A real KRaft broker for the session; stopped (and checked gone) afterwards."""
    from kafkalake.platform import local_kafka as kafka_local

    try:
        assert kafka_local.start(platform_settings).state == "up"
        yield platform_settings
    finally:
        kafka_local.stop(platform_settings)
    assert not kafka_local.status(platform_settings).running


@pytest.fixture(scope="session")
def airflow_env_ready(platform_settings: Settings) -> dict[str, str]:
    """Environment of an Airflow with a migrated SQLite DB in the session's state folder."""
    from kafkalake.platform.local_airflow import airflow_env

    env = airflow_env(platform_settings, base=cli_env(platform_settings))
    platform_settings.airflow_home.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(
        [str(Path(sys.executable).parent / "airflow"), "db", "migrate"],
        env=env, capture_output=True, text=True, timeout=300, check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return env


def consume_all(
    settings: Settings, topic: str, expected: int, *, idle_polls: int = 20
) -> list[tuple[bytes | None, bytes, int, int]]:
    """Every message of ``topic`` from the earliest offset: (key, value, partition, offset)."""
    import uuid

    from confluent_kafka import Consumer

    consumer = Consumer({"bootstrap.servers": settings.bootstrap_servers, "group.id": f"test-{uuid.uuid4()}",
                         "auto.offset.reset": "earliest", "enable.auto.commit": False})
    consumer.subscribe([topic])
    out: list[tuple[bytes | None, bytes, int, int]] = []
    idle = 0
    try:
        while len(out) < expected and idle < idle_polls:
            batch = consumer.consume(num_messages=10_000, timeout=1.0)
            idle = 0 if batch else idle + 1
            for msg in batch:
                assert msg.error() is None, msg.error()
                out.append((msg.key(), msg.value() or b"", msg.partition(), msg.offset()))
    finally:
        consumer.close()
    return out
