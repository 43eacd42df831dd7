"""Spark: sessions with the project's connectors, spark-submit of the project's jobs, the JVM jars."""

from __future__ import annotations

from typing import TYPE_CHECKING

from kafkalake._exports import lazy_exports

if TYPE_CHECKING:
    from kafkalake.spark.session import get_session, kafka_reader
    from kafkalake.spark.submit import job_conf, job_env, job_path, run_job, spark_submit_argv, stream_conf

_EXPORTS = {
    "get_session": "session",
    "kafka_reader": "session",
    "job_conf": "submit",
    "job_env": "submit",
    "job_path": "submit",
    "run_job": "submit",
    "spark_submit_argv": "submit",
    "stream_conf": "submit",
}
__all__ = [
    "get_session",
    "job_conf",
    "job_env",
    "job_path",
    "kafka_reader",
    "run_job",
    "spark_submit_argv",
    "stream_conf",
]
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
