"""A throw-away local platform for benchmarks: own state folder, catalog, free ports, shared jars."""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Iterator
from pathlib import Path

from kafkalake.config import Settings, get_settings
from kafkalake.platform import local_kafka as kafka_local
from kafkalake.platform.processes import free_ports


@contextlib.contextmanager
def bench_state(**env: str) -> Iterator[Settings]:
    """Settings on a temp state folder, removed afterwards: its own lake root and Iceberg
    catalog (the embedded SQLite file and warehouse of that folder), the platform's jars."""
    base = get_settings()
    with tempfile.TemporaryDirectory(prefix="kafkalake-bench-") as state:
        yield Settings.from_env(
            {
                **base.to_env(),
                "KAFKALAKE_STATE_DIR": state,
                "KAFKALAKE_LAKE_ROOT": str(Path(state) / "lake"),
                "KAFKALAKE_AIRFLOW_HOME": str(Path(state) / "airflow"),
                # empty: the catalog and the warehouse of the temp state folder
                "KAFKALAKE_CATALOG_URI": "",
                "KAFKALAKE_WAREHOUSE": "",
                **env,
            }
        )


@contextlib.contextmanager
def bench_kafka() -> Iterator[Settings]:
    """A real KRaft broker for one benchmark, removed afterwards (in a :func:`bench_state`)."""
    kafka_port, controller_port = free_ports(2)
    with bench_state(KAFKALAKE_BOOTSTRAP_SERVERS=f"127.0.0.1:{kafka_port}",
                     KAFKALAKE_KAFKA_CONTROLLER_PORT=str(controller_port)) as settings:
        kafka_local.start(settings)
        try:
            yield settings
        finally:
            kafka_local.stop(settings)


def results_dir() -> Path:
    path = get_settings().state_dir / "bench"
    path.mkdir(parents=True, exist_ok=True)
    return path
