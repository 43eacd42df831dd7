"""Is a stream healthy? Pure decisions over the driver's status document.

The supervisor DAG's health sensor (:mod:`kafkalake.airflow.sensors.stream_health`) reads the
stream's ``status.json`` every poke and asks :func:`assess` what to do. Everything here is a
function of its arguments (no clock, no files, no processes), so each rule has a unit test.

The rules, in order:

1. The status says ``stopped`` and the driver started in this DAG run (a graceful
   ``kafkalake stream stop`` or a finished available-now run): **done**.
2. A live driver (``starting`` / ``running``, its process exists): **restart** it when its lag
   is above ``health.max_lag``, or when it made no progress for ``health.max_idle_triggers``
   trigger intervals (before its first progress: counted from its start plus a startup grace,
   since the JVM, the session and the first batch take a while). Otherwise healthy.
3. No live driver and the job task has ended: **done** (nothing left to supervise; the job
   task's own state says how it went).
4. No live driver and the job task has not started (queued, waiting for a retry): **yield**
   the worker slot until it has.
5. No live driver while the job task runs: wait a startup grace, then **restart**.

Idle micro-batches count as progress: the driver reports them (Spark's
``noDataProgressEventInterval`` is set to the trigger interval), so "no progress" means stuck,
not "no data".
"""

from __future__ import annotations

import calendar
import enum
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

#: Status states written by the driver (kafkalake.stream.status).
LIVE_STATES = frozenset({"starting", "running"})

#: Job task states after which nothing of this DAG run will start a driver again.
JOB_FINISHED = frozenset({"success", "failed", "upstream_failed", "skipped", "removed"})
#: Job task states in which a driver is about to be started ("none": not scheduled yet).
JOB_PENDING = frozenset(
    {"none", "scheduled", "queued", "up_for_retry", "up_for_reschedule", "deferred", "restarting", "awaiting_input"}
)

#: Default time a new driver gets to report its first progress (JVM + session + first batch).
STARTUP_GRACE_S = 120.0


class Action(str, enum.Enum):
    WATCH = "watch"  # healthy, or waiting within a grace period: look again later
    YIELD = "yield"  # the job task has not started: give the worker slot back for a while
    DONE = "done"  # stopped gracefully / the job task ended: supervision is over
    RESTART = "restart"  # unhealthy: stop the driver and fail, so the job is restarted


@dataclass(frozen=True)
class Thresholds:
    """A stream's ``health:`` block, with its trigger interval (seconds)."""

    max_idle_triggers: int
    max_lag: int
    trigger_seconds: float
    startup_grace: float = STARTUP_GRACE_S


@dataclass(frozen=True)
class Verdict:
    action: Action
    reason: str


def driver_host(doc: Mapping[str, Any] | None) -> str | None:
    """The host the status's driver runs on (None: not recorded, i.e. this one)."""
    host = (doc or {}).get("host")
    return str(host) if host else None


def iso_to_epoch(text: Any) -> float | None:
    """``2026-01-01T00:00:00Z`` (the status file's stamps, UTC) -> epoch seconds; None if absent."""
    if not isinstance(text, str) or not text:
        return None
    try:
        return float(calendar.timegm(time.strptime(text, "%Y-%m-%dT%H:%M:%SZ")))
    except ValueError:
        return None


def started_in_run(doc: Mapping[str, Any], run_start: float | None) -> bool:
    """Did this status's driver start in the current DAG run? (Stamps have 1 s resolution.)"""
    if run_start is None:
        return True
    started = iso_to_epoch(doc.get("started"))
    return started is not None and started + 1.0 >= run_start


def assess(
    doc: Mapping[str, Any] | None,
    *,
    now: float,
    driver_alive: bool,
    thresholds: Thresholds,
    watch_start: float,
    run_start: float | None = None,
    job_state: str | None = None,
) -> Verdict:
    """What the supervisor should do about a stream, given its status document.

    ``driver_alive``: the status's ``pid`` is a live driver process of this stream.
    ``watch_start``: when this sensor execution began (the reference for grace periods).
    ``run_start``: when the DAG run began (None: unknown, every status counts as this run's).
    ``job_state``: the job task's state in this run ("none" if not yet scheduled; None if
    unknown, e.g. outside Airflow).
    """
    state = (doc or {}).get("state")
    if doc is not None and state == "stopped" and started_in_run(doc, run_start):
        return Verdict(Action.DONE, f"stream stopped ({doc.get('updated', '?')}): a graceful stop or a finished run")

    if doc is not None and driver_alive and state in LIVE_STATES:
        return _assess_live(doc, now=now, thresholds=thresholds)

    if job_state in JOB_FINISHED:
        return Verdict(Action.DONE, f"the job task ended ({job_state}) and no driver is running: nothing to supervise")
    if job_state in JOB_PENDING:
        return Verdict(Action.YIELD, f"the job task has not started yet ({job_state}): waiting for it")

    if doc is None:
        what = "no status file yet"
    elif state in LIVE_STATES:
        what = f"the driver (pid {doc.get('pid')}) is gone without a final state"
    else:
        error = f": {doc['error']}" if doc.get("error") else ""
        what = f"the last driver ended ({state}{error})"
    updated = iso_to_epoch((doc or {}).get("updated")) or 0.0
    since = max(watch_start, updated)
    waited = now - since
    if waited > thresholds.startup_grace:
        return Verdict(
            Action.RESTART,
            f"no live driver for {waited:.0f}s (startup grace {thresholds.startup_grace:.0f}s); {what}",
        )
    return Verdict(Action.WATCH, f"waiting for a driver ({waited:.0f}s of {thresholds.startup_grace:.0f}s); {what}")


def _assess_live(doc: Mapping[str, Any], *, now: float, thresholds: Thresholds) -> Verdict:
    lag = int(doc.get("lag") or 0)
    if lag > thresholds.max_lag:
        return Verdict(Action.RESTART, f"lag {lag:,} offsets behind latest > health.max_lag {thresholds.max_lag:,}")

    trigger = float(doc.get("trigger_seconds") or thresholds.trigger_seconds)
    window = thresholds.max_idle_triggers * trigger
    last_progress = doc.get("last_progress_epoch")
    if last_progress is not None:
        idle, since = now - float(last_progress), "its last progress"
    else:
        started = iso_to_epoch(doc.get("started"))
        started = now if started is None else started
        idle, since = now - (started + thresholds.startup_grace), (
            f"its start + {thresholds.startup_grace:.0f}s startup grace (no progress yet)"
        )
    if idle > window:
        return Verdict(
            Action.RESTART,
            f"no progress for {idle:.0f}s since {since} > {thresholds.max_idle_triggers} trigger intervals "
            f"of {trigger:g}s ({window:g}s, health.max_idle_triggers); pid {doc.get('pid')} looks stuck",
        )
    return Verdict(Action.WATCH, f"healthy: pid {doc.get('pid')}, {doc.get('state')}, lag {lag:,}, "
                                 f"idle {max(idle, 0.0):.0f}s of {window:g}s allowed")
