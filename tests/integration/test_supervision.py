"""Supervision across hosts, with real drivers: the health check goes by the status file's
heartbeat and a kill request, never by a pid, when the driver runs on another host.

The driver reports another host (``KAFKALAKE_HOST_NAME``) than the sensor's, as a driver on a
second machine would: the sensor cannot see its processes.

(a) **driver host lost**: the driver and its JVM are killed with SIGKILL (its status still says
    running, nothing updates it): the sensor judges it stuck within the health window, writes a
    kill request instead of signalling anything, and fails; the next driver starts (the old
    request does not stop it), resumes from the checkpoint, and every offset lands once.
(b) **kill request**: a live driver on "another host" ends itself within seconds when its
    supervisor asks, with one error line, exit code STALLED and the reason in its status.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from kafkalake.config import Settings
from kafkalake.errors import ExitCode
from kafkalake.kafka.topics import create_topic
from kafkalake.stream.config import get_stream, stream_paths
from kafkalake.stream.status import read_status
from tests.conftest import cli_env, run_cli
from tests.integration.lake_helpers import arrow_state, wait_for

pytestmark = pytest.mark.integration

ELSEWHERE = "driver-host-b"


def _settings(kafka: Settings, tmp_path: Path, name: str, topic: str) -> Settings:
    doc = {"streams": [{"name": name, "topics": [topic], "subject": "fridge", "trigger": "1 second",
                        "health": {"max_idle_triggers": 3}}]}
    (tmp_path / "streams.yaml").write_text(json.dumps(doc))
    return kafka.with_overrides(streams_file=tmp_path / "streams.yaml", lake_root=tmp_path / "lake",
                                state_dir=tmp_path / "state", catalog_name=f"sup_{name}")


def _start_elsewhere(settings: Settings, name: str, log: Path) -> subprocess.Popen:
    with open(log, "w") as out:
        return subprocess.Popen([sys.executable, "-m", "kafkalake.cli", "stream", "run", name],
                                env=cli_env(settings, KAFKALAKE_HOST_NAME=ELSEWHERE), stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)


def _produce(settings: Settings, topic: str, count: int, seed: int) -> None:
    result = run_cli(settings, "produce", "--topic", topic, "--count", str(count), "--workers", "1",
                     "--seed", str(seed), timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]


def _running(settings: Settings, name: str, driver: subprocess.Popen, log: Path, after_pid: int | None = None):
    paths = stream_paths(settings, get_stream(settings, name))

    def check() -> dict | None:
        assert driver.poll() is None, log.read_text()[-3000:]
        doc = read_status(paths.status_file)
        ok = doc and doc["state"] == "running" and doc.get("pid") != after_pid and doc.get("last_progress_epoch")
        return doc if ok else None

    return wait_for("the driver running", check, 180, every=0.5, log=log)


def test_a_lost_driver_host_is_detected_by_its_heartbeat_and_one_new_driver_resumes(
    kafka: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from airflow.sdk.exceptions import AirflowException

    from kafkalake.airflow.sensors.stream_health import StreamHealthSensor

    name, topic = "lost", "sup-lost"
    create_topic(kafka.bootstrap_servers, topic, partitions=2)
    settings = _settings(kafka, tmp_path, name, topic)
    for key, value in settings.to_env().items():  # the sensor reads the settings like a task does
        monkeypatch.setenv(key, value)
    paths = stream_paths(settings, get_stream(settings, name))
    _produce(settings, topic, 1000, seed=1)
    first_log = tmp_path / "driver-1.log"
    first = _start_elsewhere(settings, name, first_log)
    drivers = [first]
    try:
        doc = _running(settings, name, first, first_log)
        assert doc["host"] == ELSEWHERE
        wait_for("the first 1,000 rows", lambda: _rows(settings, name) >= 1000, 120, every=1, log=first_log)
        os.killpg(first.pid, signal.SIGKILL)  # the host is gone: nothing writes the status again
        first.wait(30)
        assert read_status(paths.status_file)["state"] == "running"
        sensor = StreamHealthSensor(task_id="health", stream=name, poke_interval=1, kill_grace=5)
        started = time.monotonic()
        with pytest.raises(AirflowException, match="no progress for") as err:
            sensor.execute(context={})
        detected = time.monotonic() - started
        assert detected < 30, detected  # the health window: 3 triggers of 1 s, plus the pokes
        assert ELSEWHERE in str(err.value) and "kill request" in str(err.value)
        request = json.loads(paths.kill_file.read_text())
        assert "no progress for" in request["reason"]

        second_log = tmp_path / "driver-2.log"
        second = _start_elsewhere(settings, name, second_log)
        drivers.append(second)
        _running(settings, name, second, second_log, after_pid=doc["pid"])
        assert not paths.kill_file.exists()  # the request was for the driver before
        _produce(settings, topic, 500, seed=2)
        wait_for("all 1,500 rows", lambda: _rows(settings, name) >= 1500, 120, every=1, log=second_log)
        rows, _digest, unique = arrow_state(settings, name)
        assert rows == unique == 1500
        # one driver on the checkpoint: a third start is refused while the second runs
        third = run_cli(settings, "stream", "run", name, timeout=120)
        assert third.returncode == ExitCode.STREAM_BUSY, third.stderr[-2000:]
        assert second.poll() is None
    finally:
        for driver in drivers:
            if driver.poll() is None:
                os.killpg(driver.pid, signal.SIGKILL)
                driver.wait(30)


def test_a_kill_request_ends_a_driver_on_another_host_with_its_reason(kafka: Settings, tmp_path: Path) -> None:
    from kafkalake.stream.driver import request_kill

    name, topic = "asked", "sup-asked"
    create_topic(kafka.bootstrap_servers, topic, partitions=2)
    settings = _settings(kafka, tmp_path, name, topic)
    log = tmp_path / "driver.log"
    driver = _start_elsewhere(settings, name, log)
    try:
        _running(settings, name, driver, log)
        asked = time.monotonic()
        request_kill(settings, get_stream(settings, name), "a test asked")
        code = driver.wait(60)
        assert time.monotonic() - asked < 30
        assert code == ExitCode.STALLED, log.read_text()[-3000:]
        errors = [line for line in log.read_text().splitlines() if line.startswith("error:")]
        assert errors and "its supervisor asked it to end: a test asked" in errors[0], errors
        doc = read_status(stream_paths(settings, get_stream(settings, name)).status_file)
        assert doc["state"] == "failed" and "a test asked" in doc["error"]
    finally:
        if driver.poll() is None:
            os.killpg(driver.pid, signal.SIGKILL)
            driver.wait(30)


def _rows(settings: Settings, name: str) -> int:
    try:
        return arrow_state(settings, name)[0]
    except Exception:  # the table appears with the first batch
        return 0
