"""The stream supervisor DAGs stop restarting a stream that a restart cannot fix.

A refused job (an exit code of FINAL_EXIT_CODES) fails ``run_stream`` once, without retries,
with the job's own error line as the reason; after a few failed runs in a row Airflow pauses the
DAG (``max_consecutive_failed_dag_runs``) instead of starting the refused job forever.
"""

from __future__ import annotations

import pytest

from kafkalake.airflow.dag_support import STREAM_MAX_CONSECUTIVE_FAILED_RUNS
from kafkalake.airflow.operators.spark_submit import final_failure_reason, job_error_line
from kafkalake.config import ConfigError
from kafkalake.errors import FINAL_EXIT_CODES, ExitCode
from kafkalake.schema.model import SchemaNotFoundError
from kafkalake.stream.config import StreamConfigError
from kafkalake.stream.decode import DecodePlanError
from kafkalake.stream.job import StreamBusyError, StreamDataLossError, exit_code_for


@pytest.fixture(scope="module")
def stream_dags(dagbag) -> dict[str, object]:
    dags = {dag_id: dag for dag_id, dag in dagbag.dags.items() if dag_id.startswith("stream_")}
    assert dags, "streams.yaml declares streams: expected stream_<name> DAGs"
    return dags


def test_stream_dags_pause_after_consecutive_failed_runs(stream_dags: dict[str, object]) -> None:
    assert 1 < STREAM_MAX_CONSECUTIVE_FAILED_RUNS <= 5  # small: a refused stream stops within minutes
    for dag_id, dag in stream_dags.items():
        assert dag.max_consecutive_failed_dag_runs == STREAM_MAX_CONSECUTIVE_FAILED_RUNS, dag_id
        assert dag.max_active_runs == 1, dag_id
        # transient failures still retry inside a run: only refusals skip the retries
        assert dag.get_task("run_stream").retries >= 1, dag_id


def test_a_healthy_streams_supervisor_gives_its_worker_slot_back(stream_dags: dict[str, object]) -> None:
    for dag_id, dag in stream_dags.items():
        assert dag.get_task("health").reschedule_when_healthy is True, dag_id


def test_the_scheduler_sees_the_limit(stream_dags: dict[str, object]) -> None:
    """The scheduler and the dag-processor read the serialized DAG, not the DAG object."""
    from airflow.serialization.serialized_objects import DagSerialization

    for dag_id, dag in stream_dags.items():
        serialized = DagSerialization.from_dict(DagSerialization.to_dict(dag))
        assert serialized.max_consecutive_failed_dag_runs == STREAM_MAX_CONSECUTIVE_FAILED_RUNS, dag_id


def test_doc_says_what_a_final_failure_does(stream_dags: dict[str, object]) -> None:
    for dag_id, dag in stream_dags.items():
        doc = " ".join(dag.doc_md.split())  # as the UI renders it: line breaks are spaces
        assert "without retries" in doc and "Recent Failed Task Logs" in doc, dag_id
        assert f"After {STREAM_MAX_CONSECUTIVE_FAILED_RUNS} failed runs in a row" in doc, dag_id
        assert "pauses this DAG" in doc and "unpause" in doc, dag_id
        for code in FINAL_EXIT_CODES:
            assert f"{int(code)} `{code.name}`" in doc, f"{dag_id}: {code.name}"


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (StreamConfigError("streams.yaml: stream 'x': unknown key(s) trigerr"), ExitCode.USAGE),
        (DecodePlanError("subject 'x': the reader schema must be a record"), ExitCode.USAGE),
        (SchemaNotFoundError("no subject 'nosuch'"), ExitCode.USAGE),
        (ConfigError("a KAFKALAKE_*_PORT variable is not an integer"), ExitCode.USAGE),
        (StreamBusyError("stream 'x' is already running"), ExitCode.STREAM_BUSY),
        (StreamDataLossError("stream 'x' stopped"), ExitCode.DATA_LOSS),
    ],
)
def test_a_refused_stream_job_exits_with_a_final_code(error: Exception, code: ExitCode) -> None:
    assert exit_code_for(error) == code
    assert code in FINAL_EXIT_CODES


def test_a_crash_is_not_final() -> None:
    """ERROR is also what a Python traceback exits with: a retry may well succeed."""
    assert exit_code_for(RuntimeError("py4j gateway closed")) == ExitCode.ERROR
    assert ExitCode.ERROR not in FINAL_EXIT_CODES


def test_the_reason_is_the_jobs_own_error_line() -> None:
    output = [
        "26/12/02 10:00:01 INFO SparkContext: Running Spark version 4.1.1",
        "error: an older line",
        "error: stream 'fridge' is already running (driver pid 4242 holds /s/.driver.lock); "
        "stop it first with `kafkalake stream stop fridge`",
        "26/12/02 10:00:03 INFO ShutdownHookManager: Shutdown hook called",
    ]
    line = job_error_line(output)
    assert line is not None and line.startswith("stream 'fridge' is already running (driver pid 4242")
    reason = final_failure_reason("stream_ingest", ExitCode.STREAM_BUSY, line)
    assert reason.startswith("stream_ingest exited with 5 (STREAM_BUSY): stream 'fridge' is already running")
    assert "not retried" in reason and "unpause" in reason and "\n" not in reason
    assert job_error_line(["INFO nothing to see"]) is None
    assert "see the job's output" in final_failure_reason("stream_ingest", ExitCode.SETUP, None)


def test_the_job_task_watches_the_pause(stream_dags: dict[str, object]) -> None:
    """The rescheduled sensor is not running while the DAG is paused: the job task must see it."""
    from kafkalake.airflow.operators.spark_submit import StreamSparkSubmitOperator

    for dag_id, dag in stream_dags.items():
        job = dag.get_task("run_stream")
        assert isinstance(job, StreamSparkSubmitOperator), dag_id
        assert f"stream_{job.stream}" == dag_id and job.job == "stream_ingest"
        assert 0 < job.pause_poll_seconds <= 60, dag_id


def test_a_pause_watch_stops_the_stream_only_while_paused(tmp_path, caplog) -> None:
    """A paused DAG gets one stop request; a driver that clears it as it starts is asked again."""
    import logging
    import time
    from types import SimpleNamespace

    from kafkalake.airflow.pause import PauseWatch
    from kafkalake.config import Settings
    from kafkalake.stream.config import get_stream, stream_paths

    settings = Settings.from_env({"KAFKALAKE_STATE_DIR": str(tmp_path)})
    stream = get_stream(settings, "fridge")
    stop_file = stream_paths(settings, stream).stop_file
    paused = {"value": False}
    ti = SimpleNamespace(dag_id="stream_fridge",
                         get_dag=lambda dag_id: SimpleNamespace(dag_id=dag_id, is_paused=paused["value"]))
    log = logging.getLogger("pause-watch-test")

    def wait_for(check, timeout: float = 5.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if check():
                return True
            time.sleep(0.02)
        return False

    with caplog.at_level(logging.INFO, logger="pause-watch-test"), \
            PauseWatch(ti=ti, settings=settings, stream=stream, every=0.05, log=log) as watch:
        time.sleep(0.3)
        assert not stop_file.exists() and watch.requests == 0  # unpaused: the stream runs on
        paused["value"] = True
        assert wait_for(lambda: watch.requests == 1) and stop_file.exists()
        time.sleep(0.3)
        assert watch.requests == 1  # one request while it stands
        stop_file.unlink()  # a driver starting now clears a request meant for the one before
        assert wait_for(lambda: watch.requests == 2) and stop_file.exists()
    assert "the DAG is paused" in caplog.text
    stop_file.unlink()
    time.sleep(0.2)
    assert not stop_file.exists()  # the watch ended with the job task


def test_a_run_started_on_a_paused_dag_stops_only_after_an_unpause_and_a_pause(tmp_path) -> None:
    """``airflow dags test`` runs a paused DAG on purpose: that is not a pause of a running stream."""
    import logging
    import time
    from types import SimpleNamespace

    from kafkalake.airflow.pause import PauseWatch
    from kafkalake.config import Settings
    from kafkalake.stream.config import get_stream, stream_paths

    settings = Settings.from_env({"KAFKALAKE_STATE_DIR": str(tmp_path)})
    stream = get_stream(settings, "fridge")
    stop_file = stream_paths(settings, stream).stop_file
    paused = {"value": True}
    ti = SimpleNamespace(dag_id="stream_fridge",
                         get_dag=lambda dag_id: SimpleNamespace(dag_id=dag_id, is_paused=paused["value"]))
    with PauseWatch(ti=ti, settings=settings, stream=stream, every=0.05, log=logging.getLogger("pause-watch-test"),
                    scheduled=False) as watch:
        time.sleep(0.3)
        assert not stop_file.exists() and watch.requests == 0
        paused["value"] = False
        time.sleep(0.3)
        paused["value"] = True
        deadline = time.monotonic() + 5
        while watch.requests < 1 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert watch.requests == 1 and stop_file.exists()


def test_a_pause_watch_survives_an_airflow_that_cannot_answer(tmp_path) -> None:
    import logging
    import time
    from types import SimpleNamespace

    from kafkalake.airflow.pause import PauseWatch
    from kafkalake.config import Settings
    from kafkalake.stream.config import get_stream, stream_paths

    def refuse(dag_id: str) -> object:
        raise ConnectionError("supervisor gone")

    settings = Settings.from_env({"KAFKALAKE_STATE_DIR": str(tmp_path)})
    stream = get_stream(settings, "fridge")
    with PauseWatch(ti=SimpleNamespace(dag_id="stream_fridge", get_dag=refuse), settings=settings, stream=stream,
                    every=0.05, log=logging.getLogger("pause-watch-test")) as watch:
        time.sleep(0.3)
        assert watch._thread.is_alive() and watch.requests == 0
    assert not stream_paths(settings, stream).stop_file.exists()


def test_a_rescheduled_look_waits_longer_than_a_worker_takes_to_report_the_last_one() -> None:
    """Sooner, the scheduler queues the next look before the worker reported the last one and
    fails it as a state mismatch (apache/airflow#10790): the health task would burn its retries."""
    from airflow.configuration import conf

    from kafkalake.airflow.sensors.stream_health import RESCHEDULE_MIN_S

    assert RESCHEDULE_MIN_S >= 3 * conf.getint("workers", "min_heartbeat_interval")
