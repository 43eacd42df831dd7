"""The Airflow scheduler restarted under a running stream: no second driver, no gap.

``airflow standalone`` runs the stream DAG; the stream catches up with what was produced. Then
the scheduler is stopped the way a service manager does it (SIGTERM, SIGKILL after a grace):
the running driver goes on and lands what is produced meanwhile. A new ``airflow scheduler``
starts on the same metadata DB, finds the job task of the dead scheduler orphaned and resets
it (``orphaned_tasks_check_interval``, shortened here); the old try is killed and the next one
starts a new driver from the checkpoint, in the same DAG run. Sampled every second throughout:
never two drivers of the stream at once; every record produced before, during and after the
restart is in the table exactly once.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from kafkalake.airflow.sensors.stream_health import RESCHEDULE_MIN_S
from kafkalake.config import Settings
from kafkalake.kafka.topics import create_topic
from kafkalake.stream.config import get_stream, stream_paths
from kafkalake.stream.status import read_status
from tests.conftest import make_settings, run_cli, stop_platform
from tests.integration.lake_helpers import arrow_state, wait_for
from tests.integration.ui_helpers import http, token

pytestmark = pytest.mark.integration

#: the new scheduler looks for orphaned tasks this often (Airflow's default is 300 s)
ORPHAN_CHECK_S = 20
#: an old scheduler counts as dead this long after its last heartbeat (default 30 s)
HEALTH_THRESHOLD_S = 15


@pytest.fixture
def platform(tmp_path: Path) -> Iterator[Settings]:
    from kafkalake.platform import local_airflow as airflow_local
    from kafkalake.platform import local_kafka as kafka_local

    topic = f"restart-{uuid.uuid4().hex[:6]}"
    streams_file = tmp_path / "streams.yaml"
    streams_file.write_text(json.dumps({"streams": [
        {"name": "fridge", "topics": [topic], "subject": "fridge", "trigger": "2 seconds"}]}))
    settings = make_settings(tmp_path / "state").with_overrides(streams_file=streams_file, lake_root=tmp_path / "lake")
    try:
        assert kafka_local.start(settings).state == "up"
        with pytest.MonkeyPatch.context() as env:
            env.setenv("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS", "admin:admin")
            for key, value in _scheduler_env().items():
                env.setenv(key, value)
            airflow_local.start(settings)
        yield settings
    finally:
        for proc in _schedulers(settings):  # the one this test started is not the standalone's child
            for child in [*proc.children(recursive=True), proc]:  # its workers, their tasks and driver
                try:
                    child.kill()
                except psutil.Error:
                    pass
        stop_platform(settings)


def _scheduler_env() -> dict[str, str]:
    return {"AIRFLOW__SCHEDULER__ORPHANED_TASKS_CHECK_INTERVAL": str(ORPHAN_CHECK_S),
            "AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_THRESHOLD": str(HEALTH_THRESHOLD_S)}


def _environ(proc: psutil.Process) -> dict[str, str]:
    try:
        return proc.environ()
    except (psutil.Error, OSError):
        return {}


def _cmdline(proc: psutil.Process) -> list[str]:
    try:
        return proc.cmdline()
    except (psutil.Error, OSError):
        return []


def _schedulers(settings: Settings) -> list[psutil.Process]:
    """The ``airflow scheduler`` processes of this platform (its AIRFLOW_HOME), not their children."""
    found = []
    for proc in psutil.process_iter():
        cmd = _cmdline(proc)
        if len(cmd) >= 2 and cmd[-1] == "scheduler" and cmd[-2].endswith("airflow") \
                and _environ(proc).get("AIRFLOW_HOME") == str(settings.airflow_home):
            found.append(proc)
    return found


def _drivers(settings: Settings) -> set[int]:
    """Pids of this platform's ``stream_ingest.py fridge`` Python drivers."""
    pids = set()
    for proc in psutil.process_iter():
        cmd = _cmdline(proc)
        if any(part.endswith("stream_ingest.py") for part in cmd) and "fridge" in cmd \
                and "python" in Path(cmd[0]).name \
                and _environ(proc).get("KAFKALAKE_STATE_DIR") == str(settings.state_dir):
            pids.add(proc.pid)
    return pids


def _produce(settings: Settings, topic: str, count: int, seed: int) -> None:
    result = run_cli(settings, "produce", "--topic", topic, "--count", str(count), "--workers", "1",
                     "--seed", str(seed), timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]


def _caught_up(status_file: Path, rows: int, settings: Settings) -> bool:
    doc = read_status(status_file) or {}
    return doc.get("state") == "running" and doc.get("lag") == 0 and arrow_state(settings, "fridge")[2] == rows


def test_a_restarted_scheduler_starts_no_second_driver_and_loses_nothing(platform: Settings, tmp_path: Path) -> None:
    from kafkalake.platform.local_airflow import airflow_env

    settings = platform
    stream = get_stream(settings, "fridge")
    topic = stream.topics[0]
    status_file = stream_paths(settings, stream).status_file
    create_topic(settings.bootstrap_servers, topic, partitions=2)
    _produce(settings, topic, 2000, seed=1)
    admin = token(settings, "admin")
    wait_for("the DAG to be parsed",
             lambda: http(settings, "GET", "/api/v2/dags/stream_fridge", token=admin)[0] == 200, 240, every=3)
    status, body, _ = http(settings, "PATCH", "/api/v2/dags/stream_fridge?update_mask=is_paused", token=admin,
                           body={"is_paused": False})
    assert status == 200, body

    seen: list[set[int]] = []

    def sample(check: Any) -> Any:
        def look() -> Any:
            seen.append(_drivers(settings))
            assert len(seen[-1]) <= 1, f"two drivers of one stream at once: {sorted(seen[-1])}"
            return check()
        return look

    wait_for("the stream to run and catch up", sample(lambda: _caught_up(status_file, 2000, settings)), 480)
    first = (read_status(status_file) or {}).get("pid")

    # stop the scheduler as a service manager does: SIGTERM, then SIGKILL after a grace
    old = _schedulers(settings)
    assert len(old) == 1, old
    old[0].send_signal(signal.SIGTERM)
    _, alive = psutil.wait_procs(old, timeout=20)
    for proc in alive:
        proc.kill()
    psutil.wait_procs(alive, timeout=10)
    _produce(settings, topic, 2000, seed=2)  # with no scheduler: the running stream still lands it
    wait_for("the stream to land records with no scheduler", sample(lambda: _caught_up(status_file, 4000, settings)),
             240)

    log = tmp_path / "scheduler.log"
    env = {**airflow_env(settings), **_scheduler_env()}
    with open(log, "w") as out:
        subprocess.Popen([str(Path(sys.executable).parent / "airflow"), "scheduler"], env=env, stdout=out,
                         stderr=subprocess.STDOUT, start_new_session=True)
    # the new scheduler resets the orphaned job task (its scheduler is gone); a new try takes over
    wait_for("a new driver from the job task's next try",
             sample(lambda: (read_status(status_file) or {}).get("pid") not in (None, first)
                    and _caught_up(status_file, 4000, settings)),
             ORPHAN_CHECK_S + HEALTH_THRESHOLD_S + 240, log=log)
    _produce(settings, topic, 2000, seed=3)
    wait_for("the new driver to land what came after", sample(lambda: _caught_up(status_file, 6000, settings)),
             240, log=log)
    for _ in range(3 * int(RESCHEDULE_MIN_S) // 2):  # and it stays the only one through the health task's looks
        sample(lambda: None)()
        time.sleep(1)

    rows, _, unique = arrow_state(settings, "fridge")
    assert rows == unique == 6000  # exactly once across the restart
    drivers = set().union(*seen)
    assert 1 <= len(drivers) <= 2, sorted(drivers)
    assert all(len(pids) <= 1 for pids in seen)
    runs = json.loads(http(settings, "GET", "/api/v2/dags/stream_fridge/dagRuns", token=admin)[1])["dag_runs"]
    assert [run["state"] for run in runs] == ["running"], runs  # the same run goes on: nothing failed
    tasks = json.loads(http(settings, "GET", f"/api/v2/dags/stream_fridge/dagRuns/{runs[0]['dag_run_id']}"
                            "/taskInstances", token=admin)[1])["task_instances"]
    states = {t["task_id"]: (t["state"], t["try_number"]) for t in tasks}
    assert states["run_stream"] == ("running", 2), states  # the orphaned try was reset, the next one runs
    assert states["health"][0] in ("up_for_reschedule", "running", "queued", "scheduled"), states
