"""Run the project's Spark jobs with spark-submit, the Maven jars and the platform config.

The same pieces (master, ``--jars``, conf, env) feed SparkSubmitOperator in Airflow
(:mod:`kafkalake.airflow.operators.spark_submit`), so a job behaves the same from the CLI,
from tests and from a DAG.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from kafkalake.catalog.config import catalog_config
from kafkalake.config import LOOPBACK, Settings
from kafkalake.errors import SetupError
from kafkalake.spark import jvm

if TYPE_CHECKING:
    from kafkalake.stream.config import StreamConfig

#: Spark settings every kafkalake job runs with, whoever submits it.
DEFAULT_CONF: dict[str, str] = {
    # A 2-core machine: the default 200 shuffle partitions cost more than they buy.
    "spark.sql.shuffle.partitions": "4",
    "spark.ui.showConsoleProgress": "false",
    "spark.sql.session.timeZone": "UTC",
    # Parquet's standard timestamp (a long) rather than the legacy INT96 (12 bytes built per
    # value); Spark, DuckDB and pyarrow read both, and files of either kind side by side.
    "spark.sql.parquet.outputTimestampType": "TIMESTAMP_MICROS",
    # HotSpot never JIT-compiles a method over 8,000 bytes of bytecode; a whole-stage codegen
    # method of a wide schema's decode passes that and would run interpreted (measured: the
    # fridge decode at 0.4x its speed when it was 9.5 KB). Compile them anyway.
    # The throughput collector, not G1: a micro-batch allocates short-lived objects per
    # decoded record and field. In fresh-JVM A/B runs (2 each) the ingest job's steady rate
    # rose from 107-114k to 131-137k rec/s with it (the single-schema job's: ~2 %); a young
    # collection of the small heap pauses for milliseconds, far below a trigger interval.
    "spark.driver.extraJavaOptions": "-Duser.timezone=UTC -XX:-DontCompileHugeMethods -XX:+UseParallelGC",
    "spark.executor.extraJavaOptions": "-Duser.timezone=UTC -XX:-DontCompileHugeMethods -XX:+UseParallelGC",
}


#: what a job on the local Spark cluster gets (kafkalake.platform.local_spark): 2 workers of 2
#: cores each, at most 2 cores a job, so that a stream and a compaction run side by side
CLUSTER_JOB_CONF: dict[str, str] = {
    "spark.cores.max": "2",
    "spark.executor.cores": "1",
    "spark.executor.memory": "1g",
}


def job_conf(settings: Settings, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """DEFAULT_CONF + the Iceberg catalog + the driver's log4j config (warnings only) + ``extra``."""
    catalog = catalog_config(settings)
    catalog.prepare_local()
    cluster = CLUSTER_JOB_CONF if settings.cluster and settings.spark_master.startswith("spark://") else {}
    conf = {**DEFAULT_CONF, **cluster, **catalog.spark_conf(), **(extra or {})}
    log4j = settings.home / "jvm" / "log4j2-spark.properties"
    if log4j.is_file() and "log4j2.configurationFile" not in conf["spark.driver.extraJavaOptions"]:
        conf["spark.driver.extraJavaOptions"] += f" -Dlog4j2.configurationFile={log4j.as_uri()}"
    return conf


def stream_conf(stream: StreamConfig) -> dict[str, str]:
    """Spark settings of a stream's driver."""
    trigger_ms = str(max(1000, int(stream.trigger_seconds * 1000)))
    return {
        # idle heartbeats as often as triggers: the health sensor tells "idle" from "stuck"
        "spark.sql.streaming.noDataProgressEventInterval": trigger_ms,
        "spark.sql.streaming.minBatchesToRetain": "100",
    }


def job_path(settings: Settings, job: str) -> Path:
    """``stream_ingest`` or ``stream_ingest.py`` -> spark_jobs/stream_ingest.py (must exist)."""
    name = job if job.endswith(".py") else f"{job}.py"
    if "/" in name or name.startswith("."):
        raise SetupError(f"job {job!r} must be a file name in {settings.spark_jobs_dir}, not a path")
    path = settings.spark_jobs_dir / name
    if not path.is_file():
        known = ", ".join(sorted(p.stem for p in settings.spark_jobs_dir.glob("*.py") if p.stem != "__init__"))
        raise SetupError(f"no Spark job {name} in {settings.spark_jobs_dir} (known: {known})")
    return path


def job_env(settings: Settings, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """Environment of spark-submit: the platform config, and the venv's Python for workers."""
    env = dict(os.environ if base is None else base)
    env.update(settings.to_env())
    env.setdefault("PYSPARK_PYTHON", sys.executable)
    if settings.spark_master.startswith("local") or settings.cluster:
        env.setdefault("SPARK_LOCAL_IP", LOOPBACK)  # one machine: no "resolves to a loopback address" warning
    env.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(settings.home), env.get("PYTHONPATH", "")]))
    return env


def spark_submit_argv(
    settings: Settings,
    job: str,
    job_args: Sequence[str] = (),
    *,
    conf: Mapping[str, str] | None = None,
    name: str | None = None,
) -> list[str]:
    """The full spark-submit command line for one of the project's jobs."""
    jvm.find_java()
    application = job_path(settings, job)
    spark_submit = Path(sys.executable).parent / "spark-submit"
    argv = [
        str(spark_submit),
        "--master", settings.spark_master,
        "--name", name or f"kafkalake-{application.stem}",
        "--jars", jvm.spark_jars_arg(settings),
    ]
    for key, value in job_conf(settings, conf).items():
        argv += ["--conf", f"{key}={value}"]
    return [*argv, str(application), *job_args]


def run_job(
    settings: Settings,
    job: str,
    job_args: Sequence[str] = (),
    *,
    conf: Mapping[str, str] | None = None,
    capture: bool = False,
    timeout: float | None = None,
) -> subprocess.CompletedProcess[str]:
    """spark-submit a job and wait for it (the CLI and tests use this)."""
    argv = spark_submit_argv(settings, job, job_args, conf=conf)
    return subprocess.run(
        argv,
        env=job_env(settings),
        text=True,
        capture_output=capture,
        timeout=timeout,
        check=False,
    )
