"""The supervisor DAG for real: Kafka, spark-submit and Airflow, no mocks.

(a) `airflow dags test stream_fridge` runs one bounded (available-now) run of the generated
    DAG: topics checked, the Spark job lands every record, the health sensor ends with it.
(b) the health sensor kills a driver that hangs (SIGSTOP: no progress) and the stream then
    restarts from its checkpoint and carries on.
(c) `airflow dags test` of a stream whose checkpoint another driver holds: run_stream waits
    ``health.handover_seconds`` for it, then fails once, without retries, and says why on an
    ERROR line.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from kafkalake.config import Settings
from kafkalake.kafka.topics import TopicError, create_topic
from kafkalake.stream.config import get_stream, stream_paths
from kafkalake.stream.status import read_status
from tests.conftest import cli_env, run_cli
from tests.integration.lake_helpers import arrow_table

pytestmark = pytest.mark.integration


def _stream_settings(kafka: Settings, tmp_path: Path, name: str, topic: str, **options: Any) -> Settings:
    doc = {"streams": [{"name": name, "topics": [topic], "subject": "fridge", "trigger": "1 second", **options}]}
    streams_file = tmp_path / "streams.yaml"
    streams_file.write_text(json.dumps(doc))  # JSON is YAML
    return kafka.with_overrides(streams_file=streams_file, lake_root=tmp_path / "lake", state_dir=tmp_path / "state")


def _produce(settings: Settings, topic: str, count: int, seed: int = 0) -> None:
    result = run_cli(settings, "produce", "--topic", topic, "--count", str(count), "--workers", "1",
                     "--seed", str(seed), timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]


def _wait_for(what: str, check: Callable[[], Any], *, timeout: float, alive: subprocess.Popen | None = None,
              log: Path | None = None) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        if alive is not None and alive.poll() is not None:
            pytest.fail(f"driver exited ({alive.returncode}) while waiting for {what}:\n"
                        + (log.read_text()[-3000:] if log else ""))
        time.sleep(0.3)
    pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}")


def test_dags_test_runs_a_bounded_stream_and_lands_every_record(
    kafka: Settings, airflow_env_ready: dict[str, str], tmp_path: Path
) -> None:
    import duckdb

    topic = f"dag-stream-{uuid.uuid4().hex[:8]}"
    settings = _stream_settings(kafka, tmp_path, "fridge", topic)
    create_topic(kafka.bootstrap_servers, topic, partitions=2)
    _produce(settings, topic, 2000)

    env = {**airflow_env_ready, **{k: v for k, v in settings.to_env().items()
                                   if k in ("KAFKALAKE_STREAMS_FILE", "KAFKALAKE_LAKE_ROOT", "KAFKALAKE_STATE_DIR")}}
    result = subprocess.run(
        [str(Path(sys.executable).parent / "airflow"), "dags", "test", "stream_fridge",
         "-c", json.dumps({"available_now": True})],
        env=env, capture_output=True, text=True, timeout=600, check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-5000:]
    assert "state=success" in output, output[-5000:]
    assert "--available-now" in output  # the param reached spark-submit
    assert f"{topic}-0: end offset" in output  # check_topics logged the end offsets

    con = duckdb.connect()
    con.register("fridge", arrow_table(settings, "fridge"))
    assert con.execute('select count(*), count(distinct (partition, "offset")) from fridge').fetchone() == (2000, 2000)
    status = read_status(stream_paths(settings, get_stream(settings, "fridge")).status_file)
    assert status["state"] == "stopped" and status["available_now"] is True


def _rows(settings: Settings, table: str) -> int:
    """Rows of ``table`` through pyiceberg; 0 before the stream created it."""
    from pyiceberg.exceptions import NoSuchTableError

    from kafkalake.catalog.config import CatalogError

    try:
        return arrow_table(settings, table).num_rows
    except (CatalogError, NoSuchTableError):
        return 0


def test_missing_topic_fails_check_with_the_command_to_create_it(
    kafka: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    from kafkalake.airflow.hooks.kafka_topics import KafkaTopicsHook
    from kafkalake.platform.local_airflow import kafka_connection

    monkeypatch.setenv("AIRFLOW_CONN_KAFKA_DEFAULT", json.dumps(kafka_connection(kafka)))
    topic = f"present-{uuid.uuid4().hex[:8]}"
    create_topic(kafka.bootstrap_servers, topic, partitions=3)
    hook = KafkaTopicsHook()
    assert hook.end_offsets([topic]) == {f"{topic}-{p}": 0 for p in range(3)}
    with pytest.raises(TopicError) as err:
        hook.end_offsets([topic, "no-such-topic"])
    message = str(err.value)
    assert "\n" not in message
    assert "'no-such-topic' does not exist" in message and "`kafkalake topic create no-such-topic`" in message


def test_health_sensor_kills_a_stalled_driver_and_the_stream_restarts(
    kafka: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import psutil
    from airflow.sdk.exceptions import AirflowException

    from kafkalake.airflow.sensors.stream_health import StreamHealthSensor
    from kafkalake.stream.driver import driver_processes

    name = "stall"
    topic = f"stall-{uuid.uuid4().hex[:8]}"
    settings = _stream_settings(kafka, tmp_path, name, topic, health={"max_idle_triggers": 3})
    create_topic(kafka.bootstrap_servers, topic, partitions=2)
    paths = stream_paths(settings, get_stream(settings, name))
    for key, value in settings.to_env().items():  # the sensor reads the settings like a task does
        monkeypatch.setenv(key, value)
    _produce(settings, topic, 1000)

    def batch_id(doc: dict | None) -> int:
        return (doc or {}).get("queries", {}).get(name, {}).get("batch_id", -1)

    def start_driver(log: Path) -> subprocess.Popen:
        with open(log, "w") as out:
            return subprocess.Popen([sys.executable, "-m", "kafkalake.cli", "stream", "run", name],
                                    env=cli_env(settings), stdout=out, stderr=subprocess.STDOUT,
                                    start_new_session=True)

    drivers: list[subprocess.Popen] = []
    try:
        log1 = tmp_path / "driver-1.log"
        drivers.append(first := start_driver(log1))
        doc = _wait_for("the first batch", lambda: (d := read_status(paths.status_file)) and d["state"] == "running"
                        and batch_id(d) >= 0 and d, timeout=180, alive=first, log=log1)
        procs = driver_processes(doc, name)
        commands = [" ".join(p.cmdline()) for p in procs]
        assert any("stream_ingest.py" in c for c in commands) and any("SparkSubmit" in c for c in commands), commands

        for proc in procs:  # the driver hangs: no batch, no idle event, no status update
            proc.suspend()
        stalled_at = batch_id(read_status(paths.status_file))
        sensor = StreamHealthSensor(task_id="health", stream=name, poke_interval=1, kill_grace=5)
        started = time.monotonic()
        with pytest.raises(AirflowException, match="no progress for") as err:
            sensor.execute(context={})
        assert time.monotonic() - started < 60
        assert "3 trigger intervals of 1s" in str(err.value)
        assert all(not p.is_running() or p.status() == psutil.STATUS_ZOMBIE for p in procs)  # killed
        assert first.wait(timeout=60) != 0  # spark-submit (here: under the CLI) ended with the driver
        assert paths.stop_file.exists()  # the stop request a merely slow driver would have honoured

        # The next run starts a fresh driver: it resumes from the checkpoint and carries on
        log2 = tmp_path / "driver-2.log"
        drivers.append(second := start_driver(log2))
        _wait_for("the restarted driver's first batch",
                  lambda: (d := read_status(paths.status_file)) and d["pid"] != doc["pid"] and d["state"] == "running",
                  timeout=180, alive=second, log=log2)
        assert not paths.stop_file.exists()  # the new driver cleared the old request
        _produce(settings, topic, 500, seed=1000)
        _wait_for("all 1,500 records in the table",
                  lambda: _rows(settings, name) == 1500, timeout=120, alive=second, log=log2)
        # batch ids continue from the checkpoint (the listener reports a batch after its commit)
        _wait_for("the restarted driver's status to report its batches",
                  lambda: batch_id(read_status(paths.status_file)) > stalled_at, timeout=30, alive=second, log=log2)
        assert sensor.poke(context={}) is False  # healthy: keep watching

        # Pausing the DAG stops the stream at a batch boundary and ends the supervision with
        # success. (The ti stands in for the Task SDK's answer "this DAG is paused".)
        paused = {"ti": SimpleNamespace(dag_id=f"stream_{name}",
                                        get_dag=lambda dag_id: SimpleNamespace(dag_id=dag_id, is_paused=True))}
        assert StreamHealthSensor(task_id="health", stream=name, poke_interval=1).execute(context=paused) is None
        assert second.wait(timeout=120) == 0
        assert read_status(paths.status_file)["state"] == "stopped"
        table = arrow_table(settings, name).select(["partition", "offset"])
        keys = set(zip(table["partition"].to_pylist(), table["offset"].to_pylist(), strict=True))
        assert len(keys) == 1500  # exactly once
    finally:
        for driver in drivers:
            if driver.poll() is None:
                os.killpg(driver.pid, signal.SIGKILL)
                driver.wait(timeout=30)


def _task_tries(airflow_env: dict[str, str], dag_id: str, task_id: str) -> list[tuple[str, int]]:
    """(state, try_number) of every try of ``task_id``: the current one plus the history of retries."""
    import sqlalchemy

    engine = sqlalchemy.create_engine(airflow_env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"])
    try:
        with engine.connect() as conn:
            tries = []
            for table in ("task_instance_history", "task_instance"):
                tries += [tuple(row) for row in conn.execute(
                    sqlalchemy.text(f"select state, try_number from {table} where dag_id = :d and task_id = :t"),
                    {"d": dag_id, "t": task_id},
                )]
            return sorted(tries, key=lambda row: row[1])
    finally:
        engine.dispose()


def test_dags_test_fails_a_held_checkpoint_once_with_the_reason(
    kafka: Settings, airflow_env_ready: dict[str, str], tmp_path: Path
) -> None:
    """Another driver holds the checkpoint: run_stream fails at once, no retry, the job's reason
    on an ERROR line (what the DAG page's "Recent Failed Task Logs" shows)."""
    from kafkalake.stream.job import acquire_driver_lock

    name = f"busy_{uuid.uuid4().hex[:6]}"
    topic = f"busy-{uuid.uuid4().hex[:8]}"
    settings = _stream_settings(kafka, tmp_path, name, topic, health={"handover_seconds": 3})
    create_topic(kafka.bootstrap_servers, topic, partitions=1)
    paths = stream_paths(settings, get_stream(settings, name))
    env = {**airflow_env_ready, **{k: v for k, v in settings.to_env().items()
                                   if k in ("KAFKALAKE_STREAMS_FILE", "KAFKALAKE_LAKE_ROOT", "KAFKALAKE_STATE_DIR")}}

    lock = acquire_driver_lock(paths.driver_lock, name)  # "the other driver": this test process
    try:
        started = time.monotonic()
        result = subprocess.run(
            [str(Path(sys.executable).parent / "airflow"), "dags", "test", f"stream_{name}",
             "-c", json.dumps({"available_now": True})],
            env=env, capture_output=True, text=True, timeout=600, check=False,
        )
        elapsed = time.monotonic() - started
    finally:
        lock.close()
    output = result.stdout + result.stderr
    assert "state=failed" in output, output[-5000:]
    # it waited for the holder to let go, as for a previous try's driver, then was refused
    assert f"a driver (pid {os.getpid()}) still holds or is leaving the checkpoint; waiting up to 3 s" in output, \
        output[-5000:]

    # once: no retry (the first retry would come 30 s later and show up as a second try)
    assert _task_tries(airflow_env_ready, f"stream_{name}", "run_stream") == [("failed", 1)], output[-5000:]
    assert _task_tries(airflow_env_ready, f"stream_{name}", "health") == [("success", 1)]
    assert elapsed < 300, f"took {elapsed:.0f}s"

    # the reason: the job's own line, with the exit code's name, at ERROR level
    reason = (f"stream_ingest exited with 5 (STREAM_BUSY): stream {name!r} is already running "
              f"(driver pid {os.getpid()} holds {paths.driver_lock})")
    error_lines = [line for line in output.splitlines() if reason in line and "error" in line.lower()[:80]]
    assert error_lines, output[-5000:]
    assert "not retried" in error_lines[0] and "unpause" in error_lines[0]
