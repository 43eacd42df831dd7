"""A Spark standalone cluster on this machine: one master and two workers, from pyspark's own
distribution (``bin/spark-class org.apache.spark.deploy.master.Master`` / ``...worker.Worker``).

Started by ``kafkalake up --cluster``; jobs then run on ``KAFKALAKE_SPARK_MASTER``
(``spark://127.0.0.1:7077`` by default), their executors on the workers. The master's web UI
(and its ``/json`` state, the readiness check) listens on the master's port + 1, the workers'
on + 2 and + 3: Spark's own defaults (8080, 8081) are Airflow's and the registry API's. Each
worker offers 2 cores and 2 GiB, and each job takes at most 2 cores
(:data:`kafkalake.spark.submit.CLUSTER_JOB_CONF`), so a stream and a compaction run side by side.
"""

from __future__ import annotations

import json
import logging
import os
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from kafkalake.config import LOCAL_HOSTS, ConfigError, Settings
from kafkalake.errors import ServiceError, SetupError
from kafkalake.platform.processes import ManagedProcess, require_free_ports, service_state
from kafkalake.spark import jvm

log = logging.getLogger(__name__)

MASTER = "spark-master"
WORKERS = ("spark-worker-1", "spark-worker-2")
WORKER_CORES = 2
WORKER_MEMORY = "2g"
START_TIMEOUT_S = 90.0


@dataclass(frozen=True)
class SparkClusterStatus:
    running: bool
    alive: bool
    master_url: str
    ui_url: str
    workers_alive: int
    apps: list[str]

    @property
    def state(self) -> str:
        return service_state(self.running, self.alive and self.workers_alive == len(WORKERS))


def master_address(settings: Settings) -> tuple[str, int]:
    """Host and port of KAFKALAKE_SPARK_MASTER (spark://host:port)."""
    parts = urlsplit(settings.spark_master)
    if parts.scheme != "spark" or not parts.hostname or not parts.port:
        raise ConfigError(f"KAFKALAKE_SPARK_MASTER={settings.spark_master!r} is not spark://host:port, "
                          "which a local Spark cluster needs")
    return parts.hostname, parts.port


def ui_url(settings: Settings) -> str:
    host, port = master_address(settings)
    return f"http://{host}:{port + 1}"


def master_state(settings: Settings, timeout: float = 2.0) -> dict[str, Any] | None:
    """The master's ``/json`` (status, workers, apps), or None when it does not answer."""
    try:
        with urllib.request.urlopen(f"{ui_url(settings)}/json/", timeout=timeout) as answer:  # noqa: S310 (loopback)
            return json.loads(answer.read())
    except (OSError, ValueError):
        return None


def _alive_workers(doc: dict[str, Any] | None) -> int:
    return sum(1 for w in (doc or {}).get("workers", []) if w.get("state") == "ALIVE")


def _spark_class() -> Path:
    path = jvm.pyspark_jars_dir().parent / "bin" / "spark-class"
    if not path.is_file():
        raise SetupError(f"pyspark has no {path}: reinstall it (`make venv`)")
    return path


def _env(settings: Settings) -> dict[str, str]:
    env = dict(os.environ)
    env.update(settings.to_env())
    env["SPARK_HOME"] = str(jvm.pyspark_jars_dir().parent)
    env["SPARK_LOG_DIR"] = str(settings.logs_dir)
    env["SPARK_LOCAL_IP"] = master_address(settings)[0]
    env.setdefault("JAVA_HOME", str(jvm.find_java().parent.parent))
    return env


def _process(settings: Settings, service: str) -> ManagedProcess:
    return ManagedProcess.for_service(settings, service)


def status(settings: Settings) -> SparkClusterStatus:
    running = all(bool(_process(settings, s).pids()) for s in (MASTER, *WORKERS))
    doc = master_state(settings) if _process(settings, MASTER).pids() else None
    apps = [a.get("name", "?") for a in (doc or {}).get("activeapps", [])]
    return SparkClusterStatus(running=running, alive=(doc or {}).get("status") == "ALIVE",
                              master_url=settings.spark_master, ui_url=ui_url(settings),
                              workers_alive=_alive_workers(doc), apps=apps)


def start(settings: Settings) -> SparkClusterStatus:
    """Start the master, then the workers; returns once the master lists both workers alive."""
    host, port = master_address(settings)
    if host not in LOCAL_HOSTS:
        raise SetupError(f"KAFKALAKE_SPARK_MASTER points at {host}: a local Spark cluster only runs on this machine")
    spark_class, env = _spark_class(), _env(settings)
    master = _process(settings, MASTER)
    if not master.pids():
        require_free_ports(MASTER, [(host, port, "KAFKALAKE_SPARK_MASTER"),
                                    (host, port + 1, "KAFKALAKE_SPARK_MASTER (its web UI: port + 1)")])
        master.start([str(spark_class), "org.apache.spark.deploy.master.Master", "--host", host, "--port", str(port),
                      "--webui-port", str(port + 1)], env=env)
        master.wait_ready(lambda: (master_state(settings, 1.0) or {}).get("status") == "ALIVE",
                          timeout=START_TIMEOUT_S, what="answering on its web UI")
    for i, service in enumerate(WORKERS):
        worker = _process(settings, service)
        if worker.pids():
            continue
        work_dir = settings.state_dir / "spark" / service
        work_dir.mkdir(parents=True, exist_ok=True)
        worker.start([str(spark_class), "org.apache.spark.deploy.worker.Worker", settings.spark_master,
                      "--host", host, "--cores", str(WORKER_CORES), "--memory", WORKER_MEMORY,
                      "--webui-port", str(port + 2 + i), "--work-dir", str(work_dir)], env=env)
    wanted = len(WORKERS)
    _process(settings, WORKERS[-1]).wait_ready(lambda: _alive_workers(master_state(settings, 1.0)) >= wanted,
                                               timeout=START_TIMEOUT_S, what=f"registering {wanted} workers")
    st = status(settings)
    if st.workers_alive < wanted:
        raise ServiceError(f"the Spark master at {settings.spark_master} lists {st.workers_alive} of {wanted} "
                           f"workers: see {settings.logs_dir}/spark-worker-*.log")
    return st


def stop_worker(settings: Settings, index: int, *, kill: bool = False) -> bool:
    """Stop (or kill -9) one worker: what a fault test does to a worker host."""
    proc = _process(settings, WORKERS[index])
    if kill:
        return proc.stop(timeout=0)
    return proc.stop(timeout=30)


def stop(settings: Settings) -> bool:
    """Workers first, then the master; True if something was running."""
    was = False
    for service in (*WORKERS, MASTER):
        was = _process(settings, service).stop(timeout=30) or was
    return was
