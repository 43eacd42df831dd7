"""Airflow 3 on this machine: ``airflow standalone`` (SQLite + LocalExecutor).

The environment built here is the single source for every Airflow process kafkalake runs
(standalone, ``airflow dags test`` in tests): AIRFLOW_HOME in the state folder, dags/ and
plugins/ from the checkout, no examples, and the ``spark_default`` / ``kafka_default``
connections as ``AIRFLOW_CONN_*`` JSON derived from :class:`~kafkalake.config.Settings`.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from kafkalake.config import Settings
from kafkalake.errors import ServiceError
from kafkalake.platform.processes import ManagedProcess, require_free_ports, service_state

log = logging.getLogger(__name__)

SERVICE = "airflow"
START_TIMEOUT_S = 300.0
ADMIN_USER = "admin"


def spark_connection(settings: Settings) -> dict[str, object]:
    """``spark_default`` in JSON form.

    The URI form ``spark://local[2]`` makes the provider fall back to ``--master yarn``;
    JSON with the whole master URL as host is read back verbatim.
    """
    return {
        "conn_type": "spark",
        "host": settings.spark_master,
        "extra": {"deploy-mode": "client", "spark-binary": "spark-submit"},
    }


def kafka_connection(settings: Settings) -> dict[str, object]:
    """``kafka_default``: the Kafka provider reads librdkafka settings from extras."""
    return {
        "conn_type": "kafka",
        "extra": {"bootstrap.servers": settings.bootstrap_servers, "group.id": "kafkalake-airflow"},
    }


def airflow_env(settings: Settings, base: dict[str, str] | None = None) -> dict[str, str]:
    """Environment for any Airflow process of this platform (standalone, dags test, CLI)."""
    env = dict(os.environ if base is None else base)
    venv_bin = str(Path(sys.executable).parent)
    # `airflow standalone` spawns `airflow ...` subprocesses and the Spark provider runs
    # `spark-submit`: both live in the venv's bin/.
    rest = [p for p in env.get("PATH", "").split(os.pathsep) if p and p != venv_bin]
    env["PATH"] = os.pathsep.join([venv_bin, *rest])
    env.update(settings.to_env())
    env.update(
        {
            "AIRFLOW_HOME": str(settings.airflow_home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(settings.dags_dir),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(settings.plugins_dir),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{settings.airflow_url}/execution/",
            "AIRFLOW__API__HOST": settings.airflow_host,
            "AIRFLOW__API__PORT": str(settings.airflow_port),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{settings.airflow_home / 'airflow.db'}",
            "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(settings.airflow_home / "logs"),
            "AIRFLOW_CONN_SPARK_DEFAULT": json.dumps(spark_connection(settings)),
            "AIRFLOW_CONN_KAFKA_DEFAULT": json.dumps(kafka_connection(settings)),
            "PYTHONPATH": os.pathsep.join(filter(None, [str(settings.home), env.get("PYTHONPATH", "")])),
        }
    )
    return env


@dataclass(frozen=True)
class AirflowStatus:
    running: bool
    healthy: bool
    pid: int | None
    url: str

    @property
    def state(self) -> str:
        return service_state(self.running, self.healthy)


def _process(settings: Settings) -> ManagedProcess:
    return ManagedProcess.for_service(settings, SERVICE)


def health(settings: Settings, timeout: float = 2.0) -> dict[str, object] | None:
    """The ``/api/v2/monitor/health`` document, or None when nothing answers."""
    url = f"{settings.airflow_url}/api/v2/monitor/health"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return json.loads(response.read())
    except (urllib.error.URLError, OSError, ValueError):
        return None


def is_healthy(doc: dict[str, object] | None) -> bool:
    """Metadatabase, scheduler, triggerer and dag processor all report healthy."""
    if not doc:
        return False
    parts = [v for k, v in doc.items() if isinstance(v, dict) and k != "api_server"]
    return bool(parts) and all(part.get("status") == "healthy" for part in parts)


def admin_password(settings: Settings) -> str | None:
    """The password SimpleAuthManager generated for ``admin`` (None until it exists)."""
    path = settings.airflow_home / "simple_auth_manager_passwords.json.generated"
    try:
        return json.loads(path.read_text()).get(ADMIN_USER)
    except (OSError, ValueError):
        return None


def status(settings: Settings) -> AirflowStatus:
    proc = _process(settings)
    running = bool(proc.pids())
    healthy = is_healthy(health(settings, timeout=2.0)) if running else False
    return AirflowStatus(running=running, healthy=healthy, pid=proc.main_pid(), url=settings.airflow_url)


def start(settings: Settings, *, on_progress: Callable[[float], None] | None = None) -> AirflowStatus:
    """Start ``airflow standalone`` and wait until the health endpoint reports healthy."""
    proc = _process(settings)
    if proc.pids():
        if is_healthy(health(settings)):
            return status(settings)
        raise ServiceError(
            f"a kafkalake Airflow is running but {settings.airflow_url} is not healthy: "
            f"run `kafkalake down` and `kafkalake up` again (log: {proc.log_file})"
        )
    require_free_ports("airflow", [(settings.airflow_host, settings.airflow_port, "KAFKALAKE_AIRFLOW_PORT")])
    settings.airflow_home.mkdir(parents=True, exist_ok=True)
    airflow_bin = Path(sys.executable).parent / "airflow"
    proc.start([str(airflow_bin), "standalone"], env=airflow_env(settings), cwd=settings.home)
    proc.wait_ready(
        lambda: is_healthy(health(settings, timeout=2.0)),
        timeout=START_TIMEOUT_S,
        what=f"reporting healthy at {settings.airflow_url}/api/v2/monitor/health",
        on_progress=on_progress,
    )
    return status(settings)


def stop(settings: Settings) -> bool:
    return _process(settings).stop(timeout=30)


def dag_run_state(env: dict[str, str], dag_id: str, run_id: str) -> str | None:
    """State of one DAG run via the ``airflow`` CLI (None: not found yet). The CLI prints
    warnings on stdout before its JSON, so the JSON line is picked out."""
    import json
    import subprocess

    result = subprocess.run([str(Path(sys.executable).parent / "airflow"), "dags", "list-runs", dag_id, "-o", "json"],
                            env=env, capture_output=True, text=True, timeout=120, check=False)
    for line in result.stdout.splitlines():
        if line.startswith("["):
            for run in json.loads(line):
                if run.get("run_id") == run_id:
                    return run.get("state")
    return None
