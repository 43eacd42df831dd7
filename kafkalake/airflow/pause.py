"""Pausing a stream DAG stops its stream: a graceful stop at the next batch boundary.

Airflow's scheduler queues no task of a paused DAG, so the one task that can see a pause is
one that is already running. The health sensor gives its worker slot back between looks
(reschedule mode) and is not running then; the job task (``run_stream``) lives exactly as long
as the driver. So the job task watches the pause in a thread (:class:`PauseWatch`), and the
health sensor checks it too whenever it does run. Both ask through the Task SDK
(``ti.get_dag(dag_id).is_paused``, the supervisor's channel is thread-safe) and stop through
the status store's stop file, which every host sees.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from logging import Logger

    from kafkalake.config import Settings
    from kafkalake.stream.config import StreamConfig


def dag_paused(ti: Any, log: Logger) -> bool:
    """Is the DAG of this task instance paused in Airflow? False when it cannot be asked."""
    if ti is None:
        return False
    try:
        return bool(ti.get_dag(ti.dag_id).is_paused)
    except Exception as exc:  # outside a task runner: pausing then only stops restarts
        log.debug("cannot read whether %s is paused: %s", getattr(ti, "dag_id", "?"), exc)
        return False


def stop_for_pause(settings: Settings, stream: StreamConfig, log: Logger) -> bool:
    """Ask the driver to stop at its next batch boundary, once; True when a request was written.

    A driver clears the stop file as it starts, so a request written just before is asked
    again on the next look while the DAG stays paused.
    """
    from kafkalake.stream.config import stream_paths
    from kafkalake.stream.driver import request_stop

    if stream_paths(settings, stream).stop_file.exists():
        return False
    request_stop(settings, stream)
    log.info("stream %s: the DAG is paused -- stopping the stream at the next batch boundary", stream.name)
    return True


class PauseWatch:
    """A daemon thread that stops ``stream`` once the DAG of ``ti`` is paused.

    What stops the stream is a pause: the DAG seen unpaused, then paused, during this task.
    A task that started on a paused DAG was run on purpose (``airflow dags test`` runs a
    paused DAG; the scheduler does not): only a scheduled run stops at once.
    """

    def __init__(self, *, ti: Any, settings: Settings, stream: StreamConfig, every: float, log: Logger,
                 scheduled: bool = True) -> None:
        self.ti = ti
        self.armed = scheduled
        self.settings = settings
        self.stream = stream
        self.every = every
        self.log = log
        self.requests = 0
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name=f"pause-watch-{stream.name}")

    def __enter__(self) -> PauseWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        self._thread.join(timeout=self.every + 5)

    def _run(self) -> None:
        while not self._done.wait(self.every):
            try:
                if not dag_paused(self.ti, self.log):
                    self.armed = True
                elif self.armed:
                    self.requests += stop_for_pause(self.settings, self.stream, self.log)
            except Exception as exc:  # a watch must never end the job task: log and look again
                self.log.warning("stream %s: pause watch: %s", self.stream.name, exc)
