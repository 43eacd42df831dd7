"""`airflow backfill create` on the compaction DAG, run by a live scheduler (`kafkalake up`).

Airflow's own backfill over a date range re-compacts those hours and is a no-op
where nothing changed. Each backfill run covers the hour of its logical date (its data
interval); the scheduler only runs backfill runs of an unpaused DAG, so the DAG is unpaused
first — and a scheduled run that comes then finds a stream that has not committed yet:
nothing is closed, nothing fails.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from kafkalake.testing.lakegen import hours_before
from tests.conftest import make_settings, run_cli
from tests.integration.lake_helpers import past_stamps, produce_at, wait_for

pytestmark = pytest.mark.integration

PER_HOUR = 1500


def _airflow(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(Path(sys.executable).parent / "airflow"), *args], env=env, capture_output=True,
                          text=True, timeout=300, check=False)


def _runs(env: dict[str, str]) -> dict[str, dict[str, Any]]:
    """The compaction DAG's runs by run id (the CLI prints warnings before its JSON line)."""
    out = _airflow(env, "dags", "list-runs", "compaction", "-o", "json").stdout
    line = next((line for line in out.splitlines() if line.startswith("[")), "[]")
    return {run["run_id"]: run for run in json.loads(line)}


def _backfill_done(env: dict[str, str], hours: list[str], after: float) -> Callable[[], dict[str, dict] | None]:
    """Check: the backfill run of each hour ended after ``after`` (a cleared run counts anew)."""
    from datetime import datetime

    def check() -> dict[str, dict] | None:
        runs = {r["logical_date"][:13]: r for r in _runs(env).values() if r["run_id"].startswith("backfill__")}
        mine = [runs.get(hour) for hour in hours]
        if all(r and r["state"] in ("success", "failed") and r["end_date"]
               and datetime.fromisoformat(r["end_date"]).timestamp() >= after for r in mine):
            return dict(zip(hours, mine, strict=True))
        return None
    return check


def _create_backfill(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """``airflow backfill create``; retried while the scheduler has not yet marked the previous
    backfill of the DAG complete (a little after its last run ended: Airflow refuses a new one),
    and when SQLite, shared with the running scheduler, answers "database is locked"."""
    def attempt() -> subprocess.CompletedProcess[str] | None:
        result = _airflow(env, "backfill", "create", "--dag-id", "compaction", *args)
        output = result.stdout + result.stderr
        return None if "AlreadyRunningBackfill" in output or "database is locked" in output else result

    return wait_for("the previous backfill to be marked complete", attempt, 180, every=3)


def _reports(settings: Any) -> dict[str, dict[str, Any]]:
    """Report of each run, by the file-safe run id (a re-run of a run id rewrites its file)."""
    folder = settings.state_dir / "reports" / "compaction"
    return {p.stem: json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))} if folder.is_dir() else {}


def _report_of(reports: dict[str, dict[str, Any]], run_id: str) -> dict[str, Any]:
    import re

    return reports[re.sub(r"[^A-Za-z0-9_.-]+", "_", run_id)[:120]]


def _compacted(report: dict[str, Any]) -> list[str]:
    return [h["hour"] for table in report["tables"] for h in table.get("hours", [])]


def test_airflow_backfill_create_compacts_each_runs_hour_and_a_second_one_changes_nothing(tmp_path: Path) -> None:
    from kafkalake.kafka.topics import create_topic
    from kafkalake.lake.manifest import read_manifest
    from kafkalake.lake.read import read_table_arrow
    from kafkalake.lake.tables import resolve_table
    from kafkalake.platform.local_airflow import airflow_env

    topic = f"backfill-{uuid.uuid4().hex[:8]}"
    (tmp_path / "streams.yaml").write_text(json.dumps({"streams": [
        {"name": "fridge", "topics": [topic], "subject": "fridge", "trigger": "1 second",
         "max_offsets_per_trigger": 700, "compaction": {"sort_by": ["name", "timestamp"]}}]}))
    settings = make_settings(tmp_path / "state").with_overrides(streams_file=tmp_path / "streams.yaml")
    up = run_cli(settings, "up", timeout=420)
    assert up.returncode == 0, up.stdout[-3000:] + up.stderr[-3000:]
    try:
        env = airflow_env(settings)
        create_topic(settings.bootstrap_servers, topic, partitions=2, config={"message.timestamp.type": "CreateTime"})
        unpause = _airflow(env, "dags", "unpause", "compaction")
        assert unpause.returncode == 0, unpause.stdout + unpause.stderr

        hours = hours_before(count=2)
        produced = produce_at(settings, topic, past_stamps(hours, PER_HOUR))
        streamed = run_cli(settings, "stream", "run", "fridge", "--available-now", timeout=600)
        assert streamed.returncode == 0, streamed.stdout[-3000:] + streamed.stderr[-3000:]
        _stream, paths = resolve_table(settings, "fridge")
        assert read_manifest(paths)["hours"] == {}  # nothing compacted yet
        keys = [h.start.strftime("%Y-%m-%dT%H") for h in hours]

        # backfill 1: the first hour only
        started = time.time()
        create = _create_backfill(env, "--from-date", hours[0].start.isoformat(),
                                  "--to-date", hours[0].start.isoformat(), "--max-active-runs", "1")
        assert create.returncode == 0, create.stdout[-3000:] + create.stderr[-3000:]
        first = wait_for("backfill 1", _backfill_done(env, keys[:1], started), 600, every=3)
        assert first[keys[0]]["state"] == "success", first
        reports = _reports(settings)
        run_id = first[keys[0]]["run_id"]
        backfill_report = _report_of(reports, run_id)
        # the run planned its own hour only, whatever else is closed
        assert {h["hour"] for t in backfill_report["tables"] for h in t["plan"]} == {keys[0]}, run_id
        # a scheduled run comes only at the top of an hour; if one came after the stream, it
        # compacted what was closed and the backfill found it done; never twice
        scheduled = [doc for name, doc in reports.items() if name.startswith("scheduled__")]
        by_scheduled = [hour for doc in scheduled for hour in _compacted(doc)]
        if not by_scheduled:
            assert _compacted(backfill_report) == [keys[0]]
            assert set(read_manifest(paths)["hours"]) == {keys[0]}
        assert sorted(_compacted(backfill_report) + by_scheduled).count(keys[0]) == 1

        # backfill 2: both hours, re-running the completed one — it is unchanged: a no-op
        started = time.time()
        create = _create_backfill(env, "--from-date", hours[0].start.isoformat(),
                                  "--to-date", hours[1].start.isoformat(),
                                  "--max-active-runs", "1", "--reprocess-behavior", "completed")
        assert create.returncode == 0, create.stdout[-3000:] + create.stderr[-3000:]
        second = wait_for("backfill 2", _backfill_done(env, keys, started), 600, every=3)
        assert all(r["state"] == "success" for r in second.values()), second
        reports = _reports(settings)
        again = {key: _report_of(reports, run["run_id"]) for key, run in second.items()}
        plan_0 = [h for t in again[keys[0]]["tables"] for h in t["plan"]]
        assert [(h["hour"], h["action"], h["why"]) for h in plan_0] == [(keys[0], "skip", "compacted, unchanged since")]
        assert _compacted(again[keys[0]]) == []
        by_scheduled = [hour for name, doc in reports.items() if name.startswith("scheduled__")
                        for hour in _compacted(doc)]
        assert sorted(_compacted(again[keys[1]]) + by_scheduled).count(keys[1]) == 1
        assert set(read_manifest(paths)["hours"]) == set(keys)

        table = read_table_arrow("fridge", settings=settings)
        assert table.num_rows == produced == 2 * PER_HOUR
        assert len(set(zip(table["partition"].to_pylist(), table["offset"].to_pylist(), strict=True))) == produced
    finally:
        down = run_cli(settings, "down", timeout=240)
        assert down.returncode == 0, down.stderr
