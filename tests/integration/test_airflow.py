"""Real Airflow: `airflow dags test` runs SparkSubmitOperator in local mode; `kafkalake up/down`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from kafkalake.config import Settings
from kafkalake.kafka.topics import create_topic
from kafkalake.platform import local_airflow as airflow_local
from kafkalake.platform import local_kafka as kafka_local
from kafkalake.platform.processes import port_in_use, proc_tag, tagged_pids
from tests.conftest import run_cli

pytestmark = pytest.mark.integration


def _airflow(env: dict[str, str], *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(Path(sys.executable).parent / "airflow"), *args],
        env=env, capture_output=True, text=True, timeout=timeout, check=False,
    )


def test_dags_test_runs_spark_submit_in_local_mode(kafka: Settings, airflow_env_ready: dict[str, str]) -> None:
    from confluent_kafka import Producer

    topic = f"dag-check-{uuid.uuid4().hex[:8]}"
    create_topic(kafka.bootstrap_servers, topic)
    producer = Producer({"bootstrap.servers": kafka.bootstrap_servers})
    for i in range(42):
        producer.produce(topic, value=f"v{i}")
    assert producer.flush(30) == 0

    conf = json.dumps({"topic": topic, "expect_rows": 42})
    result = _airflow(airflow_env_ready, "dags", "test", "kafkalake_platform_check", "-c", conf)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    assert "state=success" in output, output[-4000:]
    # spark-submit really ran with --master local[2] from spark_default and read the topic
    assert "--master local[2]" in output
    assert f'"rows": 42, "source": "kafka:{topic}"' in output


def test_dags_test_fails_when_the_job_fails(kafka: Settings, airflow_env_ready: dict[str, str]) -> None:
    topic = f"dag-empty-{uuid.uuid4().hex[:8]}"
    create_topic(kafka.bootstrap_servers, topic)
    conf = json.dumps({"topic": topic, "expect_rows": 3})
    result = _airflow(airflow_env_ready, "dags", "test", "kafkalake_platform_check", "-c", conf)
    output = result.stdout + result.stderr
    assert "state=success" not in output
    assert "expected 3" in output
    # exit 11 (CHECK_FAILED) is final: the task fails at once, its retry is never run
    assert "connector_check exited with 11 (CHECK_FAILED): read 0 rows from kafka:" in output, output[-4000:]
    assert "-- not retried" in output, output[-4000:]
    assert "up_for_retry" not in output.lower(), output[-4000:]


def test_invalid_param_is_rejected_by_the_form_schema(airflow_env_ready: dict[str, str]) -> None:
    conf = json.dumps({"topic": "../etc/passwd"})
    result = _airflow(airflow_env_ready, "dags", "test", "kafkalake_platform_check", "-c", conf, timeout=300)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "state=success" not in output
    rejected = ("does not match", "Invalid input for DAG parameters", "ParamValidationError")
    assert any(word in output for word in rejected), output[-4000:]


def _recorded_sessions(settings: Settings) -> dict[str, int]:
    """Service -> the PID in its PID file: the id of its process group and session."""
    sessions = {}
    for pid_file in sorted(settings.run_dir.glob("*.pid")):
        record = json.loads(pid_file.read_text())
        sessions[pid_file.stem] = record if isinstance(record, int) else record["pid"]
    return sessions


def _processes_in(session: int) -> list[str]:
    """`ps` lines of every live process in the process group or session ``session`` (by the
    kernel's ids, not by kafkalake's tag: Airflow's setproctitle wipes its workers' tag).
    Zombies are dead already; init reaps them in its own time."""
    ps = subprocess.run(["ps", "-eo", "pid=,pgid=,sid=,stat=,args="], capture_output=True, text=True, check=True)
    rows = [line.split(None, 4) for line in ps.stdout.splitlines()]
    return [" ".join(row) for row in rows if session in (int(row[1]), int(row[2])) and not row[3].startswith("Z")]


def test_up_prints_login_and_down_leaves_no_processes(own_platform: Settings) -> None:
    settings = own_platform
    up = run_cli(settings, "up", timeout=420)
    sessions = _recorded_sessions(settings)  # now: `down` removes the PID files
    try:
        assert up.returncode == 0, up.stdout[-3000:] + up.stderr[-3000:]
        assert f"airflow: up at {settings.airflow_url}" in up.stdout
        login = [line for line in up.stdout.splitlines() if "login: admin / " in line]
        assert login and airflow_local.admin_password(settings) in login[0]
        health = airflow_local.health(settings)
        assert airflow_local.is_healthy(health), health
        assert kafka_local.status(settings).state == "up"
        status = run_cli(settings, "status", timeout=60)
        assert status.stdout.count(" up ") == 3, status.stdout
        assert "registry: up" in up.stdout and "registry   up" in status.stdout, status.stdout
        assert set(sessions) == {"kafka", "registry", "airflow"}
        assert all(os.getsid(pid) == pid for pid in sessions.values())  # each service leads a session
        # the standalone's scheduler, api-server, LocalExecutor workers... are in its session
        assert len(_processes_in(sessions["airflow"])) > 5, _processes_in(sessions["airflow"])
    finally:
        down = run_cli(settings, "down", timeout=180)
    assert down.returncode == 0, down.stderr
    left = {service: _processes_in(session) for service, session in sessions.items()}
    assert left == {service: [] for service in sessions}, down.stderr[-2000:]
    for service in ("kafka", "registry", "airflow"):
        assert tagged_pids(proc_tag(service, settings.state_dir)) == []
    assert not port_in_use("127.0.0.1", settings.airflow_port)
    assert not port_in_use(*settings.bootstrap_host_port)
    assert not port_in_use("127.0.0.1", settings.registry_port)
    assert run_cli(settings, "kafka", "status", timeout=60).returncode == 1
    again = run_cli(settings, "down", timeout=60)  # idempotent
    assert again.returncode == 0, again.stderr
    for service in ("airflow", "registry", "kafka"):
        assert f"{service}: was not running" in again.stdout, again.stdout
