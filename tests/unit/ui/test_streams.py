"""The Streams view's data: state rules, the files it reads, and ``kafkalake status`` showing the same."""

from __future__ import annotations

import json
import subprocess
import sys
import time

from kafkalake.config import Settings
from kafkalake.stream.config import StreamConfig, get_stream, stream_paths
from kafkalake.stream.status import StatusWriter
from kafkalake.ui.streams import DagState, status_table, stream_state, stream_views
from tests.conftest import cli_env

FRIDGE = StreamConfig(name="fridge", topics=("t",), subject="fridge", trigger="5 seconds")
NOW = 1_800_000_000.0


def doc(state: str, *, progress_age: float | None = 1.0, started_age: float = 100.0) -> dict:
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(NOW - started_age))
    out = {"state": state, "trigger_seconds": 5.0, "started": stamp}
    if progress_age is not None:
        out["last_progress_epoch"] = NOW - progress_age
    return out


def test_a_fresh_driver_runs_and_one_silent_past_the_health_window_is_stalled() -> None:
    assert stream_state(doc("running", progress_age=10), None, stream=FRIDGE, now=NOW)[0] == "running"
    # health window: 12 idle triggers of 5 s = 60 s
    state, why = stream_state(doc("running", progress_age=61), None, stream=FRIDGE, now=NOW)
    assert state == "stalled" and "61s" in why
    # before its first batch a driver gets the startup grace (120 s) on top
    assert stream_state(doc("starting", progress_age=None, started_age=150), None, stream=FRIDGE,
                        now=NOW)[0] == "running"
    assert stream_state(doc("starting", progress_age=None, started_age=200), None, stream=FRIDGE,
                        now=NOW)[0] == "stalled"


def test_airflow_refines_the_file() -> None:
    failed_job = DagState("stream_fridge", is_paused=False, run_id="r", run_state="running",
                          tasks={"run_stream": "up_for_retry"})
    assert stream_state(doc("stopped"), failed_job, stream=FRIDGE, now=NOW)[0] == "failed"
    assert stream_state(doc("stopped"), None, stream=FRIDGE, now=NOW)[0] == "stopped"
    assert stream_state(doc("failed"), None, stream=FRIDGE, now=NOW)[0] == "failed"
    running_job = DagState("stream_fridge", is_paused=False, tasks={"run_stream": "running"})
    assert stream_state(None, running_job, stream=FRIDGE, now=NOW)[0] == "running"
    assert stream_state(None, None, stream=FRIDGE, now=NOW)[0] == "never run"


def _progress(batch: int) -> dict:
    return {"batch_id": batch, "input_rows": 300 + batch, "rows_per_second": 1234.5, "batch_duration_ms": 800,
            "durations_ms": {"addBatch": 700, "triggerExecution": 800}, "lag": 42,
            "offsets_behind_latest": {"fridge-events-0": 40, "fridge-events-1": 2},
            "offset_ranges": {}, "progress_time": f"2026-11-30T11:00:0{batch}.000Z"}


def write_fridge(settings: Settings) -> StatusWriter:
    stream = get_stream(settings, "fridge")
    writer = StatusWriter(stream="fridge", path=stream_paths(settings, stream).status_file, trigger_seconds=5.0)
    writer.doc["decode_plan"] = {"reader": {"version": 2, "schema_id": 2}, "writers": {"1": 1, "2": 2}}
    for batch in range(3):
        writer.on_progress("fridge", _progress(batch))
    return writer


def test_a_view_has_the_status_files_figures_and_its_history(ui_settings: Settings) -> None:
    write_fridge(ui_settings)
    plant = get_stream(ui_settings, "plant")
    gaps = stream_paths(ui_settings, plant).gaps_file
    gaps.parent.mkdir(parents=True)
    gaps.write_text(json.dumps({"detected": "start", "recorded": 1.0, "gaps": [
        {"topic_partition": "plant-events-0", "from_offset": 0, "to_offset": 10, "missing": 10}]}) + "\n")
    dags = {"stream_fridge": DagState("stream_fridge", is_paused=True)}
    fridge, plant_view = stream_views(ui_settings, dags=dags)
    assert (fridge.state, fridge.paused, fridge.batch_id, fridge.input_rows) == ("running", True, 2, 302)
    assert fridge.rows_per_second == 1234.5 and fridge.lag == 42
    assert fridge.lag_by_partition == {"fridge-events-0": 40, "fridge-events-1": 2}
    assert fridge.phases_ms == {"addBatch": 700, "triggerExecution": 800}
    assert fridge.reader_version == 2 and fridge.writer_versions == {"1": 1, "2": 2}
    assert fridge.batch_time == "2026-11-30T11:00:02.000Z"
    assert [e["batch"] for e in fridge.history] == [0, 1, 2]
    assert plant_view.state == "never run" and plant_view.paused is None
    assert plant_view.gaps == [{"topic_partition": "plant-events-0", "from_offset": 0, "to_offset": 10,
                                "missing": 10, "detected": "start", "recorded": 1.0}]
    assert [v.name for v in stream_views(ui_settings, only={"stream_plant"})] == ["plant"]


def test_kafkalake_status_prints_the_views_figures(ui_settings: Settings) -> None:
    write_fridge(ui_settings)
    views = stream_views(ui_settings, history=False)
    result = subprocess.run([sys.executable, "-c", "from kafkalake.cli.platform import _print_streams\n"
                             "from kafkalake.config import get_settings\n_print_streams(get_settings())"],
                            env=cli_env(ui_settings), capture_output=True, text=True, timeout=120, check=True)
    printed = [line for line in result.stdout.splitlines() if line]
    assert printed == status_table(views)
    fridge_line = printed[1].split()
    assert fridge_line[:6] == ["fridge", "running", "2", "302", "1,234", "42"]
