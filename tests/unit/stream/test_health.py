"""The health rules of a stream (kafkalake.stream.health.assess) on small status documents."""

from __future__ import annotations

import time
from typing import Any

import pytest

from kafkalake.stream.health import Action, Thresholds, assess, iso_to_epoch, started_in_run

T0 = 1_800_000_000.0  # an epoch second, well after the stamps below are parseable
THRESHOLDS = Thresholds(max_idle_triggers=3, max_lag=1_000, trigger_seconds=5.0, startup_grace=60.0)


def iso(epoch: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


def status(**fields: Any) -> dict[str, Any]:
    """A running driver that started at T0 and progressed at T0 + 10, no lag."""
    doc = {"stream": "fridge", "state": "running", "pid": 4242, "trigger_seconds": 5.0,
           "started": iso(T0), "updated": iso(T0 + 10), "last_progress_epoch": T0 + 10, "lag": 0,
           "error": None, "queries": {}}
    doc.update(fields)
    return doc


def verdict(doc: dict[str, Any] | None, *, now: float, alive: bool = True, **kwargs: Any):
    kwargs.setdefault("watch_start", T0)
    return assess(doc, now=now, driver_alive=alive, thresholds=THRESHOLDS, **kwargs)


def test_iso_stamps_parse_as_utc() -> None:
    assert iso_to_epoch("1970-01-01T00:01:00Z") == 60.0
    assert iso_to_epoch(iso(T0)) == T0
    assert iso_to_epoch(None) is None and iso_to_epoch("yesterday") is None


def test_progress_within_the_idle_window_is_healthy() -> None:
    # window = 3 triggers x 5 s = 15 s after the last progress at T0 + 10
    result = verdict(status(), now=T0 + 10 + 14)
    assert result.action is Action.WATCH
    assert result.reason.startswith("healthy")


def test_no_progress_for_more_than_max_idle_triggers_restarts() -> None:
    result = verdict(status(), now=T0 + 10 + 16)
    assert result.action is Action.RESTART
    assert "no progress for 16s" in result.reason and "max_idle_triggers" in result.reason


def test_the_trigger_interval_comes_from_the_status_file() -> None:
    # the driver runs with a 10 s trigger: 3 triggers = 30 s, so 16 s idle is still fine
    assert verdict(status(trigger_seconds=10.0), now=T0 + 10 + 16).action is Action.WATCH
    assert verdict(status(trigger_seconds=10.0), now=T0 + 10 + 31).action is Action.RESTART


def test_before_the_first_progress_the_startup_grace_applies() -> None:
    starting = status(state="starting", last_progress_epoch=None)
    # started at T0: grace 60 s + window 15 s
    assert verdict(starting, now=T0 + 74).action is Action.WATCH
    late = verdict(starting, now=T0 + 76)
    assert late.action is Action.RESTART
    assert "no progress yet" in late.reason


def test_lag_above_max_lag_restarts_even_with_fresh_progress() -> None:
    assert verdict(status(lag=1_000), now=T0 + 11).action is Action.WATCH
    result = verdict(status(lag=1_001), now=T0 + 11)
    assert result.action is Action.RESTART
    assert "lag 1,001" in result.reason


def test_a_stopped_stream_of_this_run_is_done() -> None:
    stopped = status(state="stopped")
    assert verdict(stopped, now=T0 + 500, alive=False, run_start=T0 - 5).action is Action.DONE
    # even while the driver process is still exiting, and with stale progress
    assert verdict(stopped, now=T0 + 500, alive=True, run_start=T0 - 5).action is Action.DONE


def test_a_stopped_status_from_an_earlier_run_is_not_this_runs_driver() -> None:
    old = status(state="stopped", started=iso(T0 - 3600), updated=iso(T0 - 3000))
    assert not started_in_run(old, T0)
    # job task not started yet: wait for it instead of ending supervision at once
    assert verdict(old, now=T0 + 5, alive=False, run_start=T0, job_state="queued").action is Action.YIELD
    # job task running: a new driver has the startup grace to appear, then the run is unhealthy
    assert verdict(old, now=T0 + 30, alive=False, run_start=T0, job_state="running").action is Action.WATCH
    late = verdict(old, now=T0 + 61, alive=False, run_start=T0, job_state="running")
    assert late.action is Action.RESTART and "no live driver" in late.reason


def test_a_dead_driver_without_a_final_state_is_not_supervised_as_live() -> None:
    # the pid is gone (killed -9): its stale progress must not count, nor trigger an idle restart
    crashed = status(last_progress_epoch=T0 - 1_000)
    result = verdict(crashed, now=T0 + 20, alive=False, job_state="running")
    assert result.action is Action.WATCH
    assert "gone without a final state" in result.reason


def test_job_task_waiting_for_a_retry_yields_and_an_ended_job_is_done() -> None:
    failed = status(state="failed", error="boom")
    assert verdict(failed, now=T0 + 20, alive=False, job_state="up_for_retry").action is Action.YIELD
    assert verdict(failed, now=T0 + 20, alive=False, job_state="scheduled").action is Action.YIELD
    assert verdict(failed, now=T0 + 20, alive=False, job_state="failed").action is Action.DONE
    assert verdict(None, now=T0 + 20, alive=False, job_state="success").action is Action.DONE


def test_a_live_driver_is_supervised_whatever_the_job_state() -> None:
    # a stuck driver is killed even if Airflow lost track of the job task
    assert verdict(status(), now=T0 + 100, job_state="failed").action is Action.RESTART
    assert verdict(status(), now=T0 + 12, job_state="failed").action is Action.WATCH


def test_failed_driver_reason_carries_its_error_after_the_grace() -> None:
    failed = status(state="failed", error="Kafka offsets are gone", updated=iso(T0 + 10))
    # grace counts from the later of watch start and the driver's last update
    assert verdict(failed, now=T0 + 69, alive=False).action is Action.WATCH
    result = verdict(failed, now=T0 + 71, alive=False)
    assert result.action is Action.RESTART
    assert "Kafka offsets are gone" in result.reason


@pytest.mark.parametrize("job_state", [None, "running"])
def test_no_status_file_waits_for_the_startup_grace(job_state: str | None) -> None:
    assert verdict(None, now=T0 + 59, alive=False, job_state=job_state).action is Action.WATCH
    result = verdict(None, now=T0 + 61, alive=False, job_state=job_state)
    assert result.action is Action.RESTART and "no status file yet" in result.reason
