"""Health sensor of a running stream: reads its status file, kills a stuck driver.

It runs beside the job task (``run_stream``) of the stream's supervisor DAG. Every poke it
reads ``$STATE/streams/<stream>/status.json`` (written by the driver's StreamingQueryListener)
and applies :func:`kafkalake.stream.health.assess`:

* stopped (graceful stop, finished available-now run) or job task ended -> success;
* no progress for ``health.max_idle_triggers`` trigger intervals, or lag above
  ``health.max_lag`` -> request a stop, SIGTERM the driver (python + its spark-submit JVM and
  that JVM's workers), SIGKILL what is left after a grace, and fail. The job task then ends,
  and its retry / the next ``@continuous`` run starts a fresh driver from the checkpoint
  (docs/architecture.md: Exactly once into the lake);
* job task not started yet (queued, waiting for its retry) -> give the worker slot back
  for a while (``airflow dags test``, which runs one task at a time, needs that too).

Across hosts: the status file names the driver's host (``KAFKALAKE_HOST_NAME``). On that
host the driver is identified by the ``pid`` in the status file and checked to be a
``stream_ingest.py <stream>`` process, so a stale file never makes it kill something else.
On any other host the pid means nothing: the sensor goes by the heartbeat every host sees
(the status file's progress stamps; a driver whose host is lost stops beating and is judged
stuck after the health window) and, to stop a stuck driver, writes a kill request that the
driver's watchdog obeys (:mod:`kafkalake.stream.watchdog`).

With ``reschedule_when_healthy`` (the stream DAGs set it), a look that finds a healthy driver
gives the worker slot back until the next one (at least :data:`RESCHEDULE_MIN_S` later): a
supervisor of a stream that runs for months holds a slot only while it waits for a driver to
appear (at most the startup grace). Airflow then runs no look while the DAG is paused, so the
job task watches the pause (:mod:`kafkalake.airflow.pause`); a look that does run stops a
paused stream too.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import UTC, timedelta
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseSensorOperator
from airflow.sdk.exceptions import AirflowException, AirflowRescheduleException

from kafkalake.airflow.pause import dag_paused, stop_for_pause
from kafkalake.stream.config import stream_paths
from kafkalake.stream.driver import driver_processes, terminate_driver
from kafkalake.stream.health import LIVE_STATES, STARTUP_GRACE_S, Action, Thresholds, driver_host

if TYPE_CHECKING:
    from datetime import datetime

    from airflow.sdk import Context

#: A supervisor watches a job that runs for months: the sensor itself never times out.
FOREVER = timedelta(days=3650)
#: Shortest wait before a rescheduled look. The worker reports a finished look up to
#: ``[workers] min_heartbeat_interval`` (5 s) after it ended; a look due sooner is queued
#: first, and the scheduler then fails it as "finished with state success, but the task
#: instance's state attribute is queued" (apache/airflow#10790, #71502).
RESCHEDULE_MIN_S = 30.0


class StreamHealthSensor(BaseSensorOperator):
    """Succeeds when the stream stops; fails (after killing the driver) when it is unhealthy.

    :param stream: a stream name of streams.yaml (thresholds come from its ``health:`` block,
        read at poke time, so an edit applies without re-deploying the DAG).
    :param job_task_id: the task running the driver in the same DAG run (its state tells
        "not started yet" from "ended"); None outside a DAG run.
    :param max_idle_triggers: / :param max_lag: override streams.yaml's values.
    :param startup_grace: seconds a new driver gets before its first progress counts as late.
    :param kill_grace: seconds between SIGTERM and SIGKILL.
    :param yield_seconds: while the job task has not started, look again after this long.
    :param reschedule_when_healthy: after a healthy look, give the worker slot back until the
        next poke, at least :data:`RESCHEDULE_MIN_S` later (Airflow reschedules the task),
        instead of holding it.
    """

    template_fields: Sequence[str] = ("stream",)
    ui_color = "#d8f3dc"

    def __init__(
        self,
        *,
        stream: str,
        job_task_id: str | None = None,
        max_idle_triggers: int | None = None,
        max_lag: int | None = None,
        startup_grace: float = STARTUP_GRACE_S,
        kill_grace: float = 10.0,
        yield_seconds: float = 30.0,
        reschedule_when_healthy: bool = False,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("mode", "poke")
        kwargs.setdefault("timeout", FOREVER)
        super().__init__(**kwargs)
        self.stream = stream
        self.job_task_id = job_task_id
        self.max_idle_triggers = max_idle_triggers
        self.max_lag = max_lag
        self.startup_grace = startup_grace
        self.kill_grace = kill_grace
        self.yield_seconds = yield_seconds
        self.reschedule_when_healthy = reschedule_when_healthy
        self._watch_start = time.time()
        self._last_logged: tuple[str, float] = ("", 0.0)

    def execute(self, context: Context) -> Any:
        self._watch_start = time.time()
        return super().execute(context)

    def poke(self, context: Context) -> bool:
        from kafkalake.config import get_settings
        from kafkalake.stream.config import get_stream
        from kafkalake.stream.health import assess
        from kafkalake.stream.status import read_status

        settings = get_settings()
        stream = get_stream(settings, self.stream)
        status_file = stream_paths(settings, stream).status_file
        doc = read_status(status_file)
        remote = driver_host(doc) not in (None, settings.host_name)
        # on the driver's host: its processes; elsewhere: what its status says (the heartbeat decides)
        driver = [] if remote else driver_processes(doc, stream.name)
        alive = (doc or {}).get("state") in LIVE_STATES if remote else bool(driver)
        thresholds = Thresholds(
            max_idle_triggers=self.max_idle_triggers or stream.health.max_idle_triggers,
            max_lag=self.max_lag if self.max_lag is not None else stream.health.max_lag,
            trigger_seconds=stream.trigger_seconds,
            startup_grace=self.startup_grace,
        )
        if alive and dag_paused(context.get("ti"), self.log):
            stop_for_pause(settings, stream, self.log)
        now = time.time()
        verdict = assess(
            doc,
            now=now,
            driver_alive=alive,
            thresholds=thresholds,
            watch_start=self._watch_start,
            run_start=_run_start(context),
            job_state=self._job_state(context),
        )
        self._log_verdict(verdict.action, verdict.reason, now)

        if verdict.action is Action.DONE:
            return True
        if verdict.action is Action.YIELD:
            raise AirflowRescheduleException(reschedule_date=_utc(now + self.yield_seconds))
        if verdict.action is Action.RESTART:
            from kafkalake.stream.driver import request_kill, request_stop

            if alive:  # (with no driver, a stop file could stop the next one as it starts)
                request_stop(settings, stream)  # honoured at a batch boundary if the driver is only slow
            if remote:
                request_kill(settings, stream, verdict.reason)
                gone = (f"the driver runs on {driver_host(doc)}: a kill request for its watchdog was written "
                        f"({stream_paths(settings, stream).kill_file})")
            else:
                killed = terminate_driver(driver, grace=self.kill_grace, log=self.log)
                gone = f"stop requested and driver processes {killed} terminated" if killed else "no driver to stop"
            raise AirflowException(
                f"stream {stream.name!r} is unhealthy: {verdict.reason}; {gone}. "
                f"The job restarts from its checkpoint (status: {status_file})"
            )
        if alive and self.reschedule_when_healthy:
            raise AirflowRescheduleException(reschedule_date=_utc(now + max(self.poke_interval, RESCHEDULE_MIN_S)))
        return False

    def _log_verdict(self, action: Action, reason: str, now: float) -> None:
        """Changes at once, the same state once a minute (a supervisor pokes for months)."""
        key = f"{action.value}:{reason.split()[0]}"
        if key != self._last_logged[0] or now - self._last_logged[1] >= 60:
            self.log.info("stream %s: %s -- %s", self.stream, action.value, reason)
            self._last_logged = (key, now)

    def _job_state(self, context: Context) -> str | None:
        """State of the job task in this run ("none" before it is scheduled); None if unknown."""
        ti, dag_run = context.get("ti"), context.get("dag_run")
        if not self.job_task_id or ti is None or dag_run is None:
            return None
        try:
            states = ti.get_task_states(dag_id=ti.dag_id, task_ids=[self.job_task_id], run_ids=[dag_run.run_id])
        except Exception as exc:  # an older API server, or outside a task runner: rules without it
            self.log.warning("cannot read the state of %s: %s", self.job_task_id, exc)
            return None
        run_states = states.get(dag_run.run_id, {})
        if self.job_task_id not in run_states:
            return None
        state = run_states[self.job_task_id]
        return "none" if state is None else str(getattr(state, "value", state))


def _run_start(context: Context) -> float | None:
    dag_run = context.get("dag_run")
    start = getattr(dag_run, "start_date", None)
    return start.timestamp() if start is not None else None


def _utc(epoch: float) -> datetime:
    from datetime import datetime

    return datetime.fromtimestamp(epoch, tz=UTC)
