"""Supervisor DAGs: one ``stream_<name>`` per stream of streams.yaml.

Reading streams.yaml here is a small local file read of configuration (like any dynamic-DAG
config file); the Spark jars, Kafka and the status files are touched only by the tasks.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import DAG, Param, task

from kafkalake.airflow.operators.spark_submit import KafkalakeSparkSubmitOperator
from kafkalake.airflow.sensors.stream_health import StreamHealthSensor
from kafkalake.config import get_settings
from kafkalake.spark.submit import stream_conf
from kafkalake.stream.config import StreamConfig, load_streams, stream_paths

DOC = """
### stream `{name}`: Kafka `{topics}` → landing zone

Runs the Spark Structured Streaming job of stream **{name}** (`spark_jobs/stream_ingest.py`,
subject `{subject}`, {formats}, trigger `{trigger}`) and keeps it running. The schedule is
`@continuous` with one active run: when a run ends (the job crashed, was killed as unhealthy,
or stopped), the next run starts it again from its checkpoint — exactly once, no duplicates.

* **check_topics** — the topics exist on `kafka_default`; logs end offsets and the backlog
  behind the checkpoint. A missing topic fails with the command that creates it
  (`kafkalake topic create <topic>`).
* **run_stream** — spark-submit on `spark_default`, runs until stopped (no execution timeout).
  Marking it failed / clearing it kills spark-submit.
* **health** — reads the status file every {poke:g} s. Fails, after stopping and killing the
  driver, when there was no progress for {idle} trigger intervals ({window:g} s;
  `health.max_idle_triggers`) or the lag exceeds {max_lag:,} offsets (`health.max_lag`).
  Idle batches count as progress. Succeeds when the stream stopped.

Failed tasks retry with exponential backoff; after that the next run restarts the stream.

**Stop:** pause this DAG: the health task sees it within one poke and asks the driver to
stop at the next batch boundary; the run ends with success and no new run starts.
(`kafkalake stream stop {name}` stops it the same way, but the unpaused DAG then starts it
again.) **Restart:** unpause.
**Status:** `kafkalake status` (batch, rows/s, lag, last progress, error), or the file
`{status_file}`.
**Bounded run** (tests, catch-up): trigger with `available_now: true`; the job reads what is
in Kafka now, then stops.
"""


@task(task_id="check_topics")
def check_topics(stream_name: str) -> dict[str, object]:
    """The stream's topics exist; end offsets and backlog in the log (and XCom)."""
    from kafkalake.airflow.hooks.kafka_topics import KafkaTopicsHook

    return KafkaTopicsHook().check_stream(stream_name)


def supervisor_dag(stream: StreamConfig, status_file: str) -> DAG:
    poke_seconds = max(5.0, stream.trigger_seconds)
    with DAG(
        dag_id=f"stream_{stream.name}",
        description=f"Kafka {', '.join(stream.topics)} -> landing zone ({stream.name}), kept running",
        doc_md=DOC.format(
            name=stream.name, topics=", ".join(stream.topics), subject=stream.subject,
            formats=" + ".join(stream.sink_formats), trigger=stream.trigger, poke=poke_seconds,
            idle=stream.health.max_idle_triggers, window=stream.health.max_idle_triggers * stream.trigger_seconds,
            max_lag=stream.health.max_lag, status_file=status_file,
        ),
        schedule="@continuous",
        start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
        catchup=False,
        max_active_runs=1,
        tags=["kafkalake", "stream", stream.name],
        default_args={
            "owner": "kafkalake",
            "retries": 3,
            "retry_delay": timedelta(seconds=30),
            "retry_exponential_backoff": 2.0,
            "max_retry_delay": timedelta(minutes=10),
        },
        params={
            "available_now": Param(False, type="boolean",
                                   description="read what is in Kafka now, then stop (tests, catch-up)"),
        },
    ) as dag:
        topics_ok = check_topics(stream.name)
        run_stream = KafkalakeSparkSubmitOperator(
            task_id="run_stream",
            job="stream_ingest",
            # the operator drops arguments that render empty
            job_args=[stream.name, "{{ '--available-now' if params.available_now else '' }}"],
            conf=stream_conf(stream),
            execution_timeout=None,
        )
        health = StreamHealthSensor(
            task_id="health",
            stream=stream.name,
            job_task_id=run_stream.task_id,
            poke_interval=poke_seconds,
        )
        topics_ok >> [run_stream, health]
    return dag


_settings = get_settings()
for _stream in load_streams(_settings.streams_file).values():
    globals()[f"stream_{_stream.name}"] = supervisor_dag(_stream, str(stream_paths(_settings, _stream).status_file))
