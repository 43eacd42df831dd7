"""Supervisor DAGs: one ``stream_<name>`` per stream of streams.yaml.

Reading streams.yaml here is a small local file read of configuration (like any dynamic-DAG
config file); the Spark jars, Kafka and the status files are touched only by the tasks.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import DAG, Param, task

from kafkalake.airflow.dag_support import STREAM_MAX_CONSECUTIVE_FAILED_RUNS
from kafkalake.airflow.operators.spark_submit import StreamSparkSubmitOperator
from kafkalake.airflow.sensors.stream_health import RESCHEDULE_MIN_S, StreamHealthSensor
from kafkalake.config import get_settings
from kafkalake.spark.submit import stream_conf
from kafkalake.stream.config import StreamConfig, load_streams, stream_paths

DOC = """
### stream `{name}`: Kafka `{topics}` → Iceberg tables `{tables}`

Runs the Spark Structured Streaming job of stream **{name}** (`spark_jobs/stream_ingest.py`,
subject `{subject}`, {formats}, trigger `{trigger}`) and keeps it running. The schedule is
`@continuous` with one active run: when a run ends (the job crashed, was killed as unhealthy,
or stopped), the next run starts it again from its checkpoint — exactly once, no duplicates.

* **check_topics** — the topics exist on `kafka_default`; logs end offsets and the backlog
  behind the checkpoint. A missing topic fails with the command that creates it
  (`kafkalake topic create <topic>`).
* **run_stream** — spark-submit on `spark_default`, runs until stopped (no execution timeout).
  Marking it failed / clearing it kills spark-submit.
* **health** — reads the status file every {poke:g} s until the driver reports, then every
  {look:g} s, giving its worker slot back in between (reschedule mode). Fails, after stopping
  and killing the driver, when there was no progress for {idle} trigger intervals ({window:g} s;
  `health.max_idle_triggers`) or the lag exceeds {max_lag:,} offsets (`health.max_lag`).
  Idle batches count as progress. Succeeds when the stream stopped.

Failed tasks retry with exponential backoff; after that the next run restarts the stream.

**Refused (final) failures.** When the job exits with a code a restart cannot change (2 `USAGE`:
this stream's declaration in streams.yaml or its registry subject is refused; 3 `SETUP`: jars,
Java; 5 `STREAM_BUSY`: another driver still holds the checkpoint after `health.handover_seconds`;
6 `DATA_LOSS`: Kafka no longer has offsets the stream had not read; 11 `CHECK_FAILED`),
**run_stream** fails at once, without
retries. The reason is one line, the job's own error, logged at ERROR level: the DAG's
*Overview* lists it under **Recent Failed Task Logs** (*Show Logs*). After {max_failed_runs}
failed runs in a row (for any reason) Airflow pauses this DAG, so a refused stream is not
restarted in a loop: fix the cause (e.g. `fail_on_data_loss: false` to accept a data-loss gap
deliberately, or stop the other driver), then unpause.

**Stop:** pause this DAG: **run_stream** sees it within {poke:g} s and asks the driver to stop
at the next batch boundary; it ends with success. Airflow runs no task of a paused DAG, so
the run stays open until you unpause: then **health** sees the stopped stream and succeeds,
and the next run starts the stream again.
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
        description=f"Kafka {', '.join(stream.topics)} -> Iceberg tables of {stream.name}, kept running",
        doc_md=DOC.format(
            name=stream.name, topics=", ".join(stream.topics), subject=stream.subject,
            look=max(poke_seconds, RESCHEDULE_MIN_S),
            tables=", ".join(stream.all_tables),
            formats=" + ".join(stream.sink_formats), trigger=stream.trigger, poke=poke_seconds,
            idle=stream.health.max_idle_triggers, window=stream.health.max_idle_triggers * stream.trigger_seconds,
            max_lag=stream.health.max_lag, status_file=status_file,
            max_failed_runs=STREAM_MAX_CONSECUTIVE_FAILED_RUNS,
        ),
        schedule="@continuous",
        start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
        catchup=False,
        max_active_runs=1,
        # a refused job fails each run at once: Airflow pauses the DAG instead of looping
        max_consecutive_failed_dag_runs=STREAM_MAX_CONSECUTIVE_FAILED_RUNS,
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
        run_stream = StreamSparkSubmitOperator(
            task_id="run_stream",
            stream=stream.name,
            pause_poll_seconds=poke_seconds,
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
            reschedule_when_healthy=True,  # a healthy stream's supervisor holds no worker slot
        )
        topics_ok >> [run_stream, health]
    return dag


_settings = get_settings()
for _stream in load_streams(_settings.streams_file).values():
    globals()[f"stream_{_stream.name}"] = supervisor_dag(_stream, str(stream_paths(_settings, _stream).status_file))
