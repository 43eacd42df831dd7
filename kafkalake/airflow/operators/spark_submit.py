"""SparkSubmitOperator for the project's own jobs.

A DAG names a job (``spark_jobs/<job>.py``) and its arguments; the Maven jar list, the
platform conf and the ``KAFKALAKE_*`` environment are filled in at execute time on the worker
(globbing the jar folder at DAG parse time would be I/O in the scheduler's hot loop).
Everything else — connection ``spark_default``, ``on_kill`` stopping spark-submit — is the
provider's. A job that exits with one of :data:`kafkalake.errors.FINAL_EXIT_CODES` fails the task
without its retries: a retry would be refused the same way. The failure names the job's own
``error:`` line, logged at ERROR level, which Airflow's DAG page lists under the DAG's recent
failed tasks.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from airflow.providers.apache.spark.operators.spark_submit import SparkSubmitOperator
from airflow.sdk.exceptions import AirflowException, AirflowFailException

from kafkalake.errors import FINAL_EXIT_CODES, ExitCode

if TYPE_CHECKING:
    from airflow.sdk import Context


class KafkalakeSparkSubmitOperator(SparkSubmitOperator):
    """Run ``spark_jobs/<job>.py`` with the platform's jars, conf and settings."""

    template_fields: Sequence[str] = (*SparkSubmitOperator.template_fields, "job")

    def __init__(self, *, job: str, job_args: Sequence[str] = (), **kwargs: Any) -> None:
        kwargs.setdefault("name", f"kafkalake-{job}")
        kwargs.setdefault("conn_id", "spark_default")
        super().__init__(application=f"{job}.py", application_args=list(job_args), **kwargs)
        self.job = job

    def execute(self, context: Context) -> None:
        from kafkalake.config import get_settings
        from kafkalake.spark import jvm
        from kafkalake.spark.submit import job_conf, job_env, job_path

        settings = get_settings()
        # an optional flag that Jinja rendered as "" must not reach the job as an argument;
        # an argument that rendered (natively) as a list is spread into several
        args: list[str] = []
        for arg in self.application_args or []:
            args.extend(str(a) for a in arg) if isinstance(arg, (list, tuple)) else args.append(str(arg))
        self.application_args = [arg for arg in args if arg != ""]
        self.application = str(job_path(settings, self.job))
        self.jars = jvm.spark_jars_arg(settings)
        self.conf = job_conf(settings, self.conf)
        job_environment = job_env(settings, base={})
        self.env_vars = {**job_environment, **(self.env_vars or {})}
        self._hook = None  # rebuild the hook with the values above
        try:
            return super().execute(context)
        except AirflowException as exc:
            code = self._exit_code()
            if code in FINAL_EXIT_CODES:
                reason = final_failure_reason(self.job, code, self._job_error_line())
                # ERROR level: the DAG page's "Recent Failed Task Logs" shows a failed task's
                # error lines inline, so the reason is read there without opening the log
                self.log.error("%s", reason)
                raise AirflowFailException(reason) from exc
            raise

    def _exit_code(self) -> int | None:
        """spark-submit's exit code (client mode: the driver's, i.e. the job's)."""
        process = getattr(self._hook, "_submit_sp", None)
        return process.returncode if process is not None else None

    def _job_error_line(self) -> str | None:
        """The job's own ``error: ...`` line from the tail of spark-submit's output the hook keeps."""
        tail = getattr(self._hook, "_last_submit_log_lines", None) or ()
        return job_error_line(tail)


class StreamSparkSubmitOperator(KafkalakeSparkSubmitOperator):
    """The ``stream_ingest`` job of one stream; pausing its DAG stops the stream.

    The task lives as long as the driver, so it is the one running task that sees a pause
    (:mod:`kafkalake.airflow.pause`): every ``pause_poll_seconds`` it asks Airflow, and a
    paused DAG gets a graceful stop at the next batch boundary; the job then exits 0.
    A try that starts while the previous try's driver is still ending (a restarted scheduler
    reset the orphaned task) waits for it first (:func:`kafkalake.stream.driver.wait_for_handover`).
    """

    def __init__(self, *, stream: str, pause_poll_seconds: float = 5.0, **kwargs: Any) -> None:
        super().__init__(job="stream_ingest", **kwargs)
        self.stream = stream
        self.pause_poll_seconds = pause_poll_seconds

    def execute(self, context: Context) -> None:
        from kafkalake.airflow.pause import PauseWatch
        from kafkalake.config import get_settings
        from kafkalake.stream.config import get_stream
        from kafkalake.stream.driver import wait_for_handover

        settings = get_settings()
        stream = get_stream(settings, self.stream)
        wait_for_handover(settings, stream, timeout_s=stream.health.handover_seconds, say=self.log.info)
        run_type = getattr(context.get("dag_run"), "run_type", None)
        scheduled = getattr(run_type, "value", run_type) in (None, "scheduled")
        with PauseWatch(ti=context.get("ti"), settings=settings, stream=stream, every=self.pause_poll_seconds,
                        log=self.log, scheduled=scheduled):
            return super().execute(context)


def job_error_line(output: Iterable[str]) -> str | None:
    """The last ``error: <reason>`` line a job printed (spark_jobs/*.py end with one), without the prefix."""
    found = None
    for line in output:
        text = str(line).strip()
        if text.startswith("error: "):
            found = text.removeprefix("error: ").strip()
    return found or None


def final_failure_reason(job: str, code: int, error_line: str | None) -> str:
    """One line: what refused, why, and that a retry would not help."""
    name = ExitCode(code).name
    why = error_line or "see the job's output in the log"
    return (f"{job} exited with {code} ({name}): {why} -- not retried, the next run would be refused the "
            "same way; fix the cause, then clear the task or unpause the DAG")
