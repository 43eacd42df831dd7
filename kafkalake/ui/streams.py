"""The Streams view's data: per stream, what its status file, its history and Airflow say.

docs/operator-views.md: Streams. Everything here reads files the driver replaces atomically
(``status.json``, ``history.jsonl``, ``gaps.jsonl``) and facts handed in (Airflow's DAG state,
the lake's counts): no lock, no Kafka, no Spark, no local pid (docs/architecture.md: Operators
act through Airflow), so opening the view costs the stream nothing and any host can serve it.
``kafkalake status`` prints the same :class:`StreamView` fields.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from kafkalake.config import Settings
from kafkalake.stream.config import StreamConfig, load_streams, stream_paths
from kafkalake.stream.health import STARTUP_GRACE_S, iso_to_epoch
from kafkalake.stream.status import FAILED, RUNNING, STARTING, STOPPED, history_file, read_history, read_status

#: the states an operator sees (the status file's own, refined by staleness and Airflow)
STALLED, NEVER_RUN = "stalled", "never run"
#: the DAG's job task: its state tells whether Airflow still runs a driver
JOB_TASK = "run_stream"
#: the chart spans this many seconds
CHART_WINDOW_S = 3600.0


@dataclass(frozen=True)
class DagState:
    """What Airflow's metadata DB says about one DAG (filled in by the api-server's adapter)."""

    dag_id: str
    is_paused: bool
    run_id: str | None = None
    run_state: str | None = None
    run_start: str | None = None
    tasks: Mapping[str, str | None] = field(default_factory=dict)

    @classmethod
    def from_doc(cls, doc: Mapping[str, Any]) -> DagState:
        return cls(dag_id=str(doc["dag_id"]), is_paused=bool(doc.get("is_paused")), run_id=doc.get("run_id"),
                   run_state=doc.get("run_state"), run_start=doc.get("run_start"), tasks=dict(doc.get("tasks") or {}))


@dataclass(frozen=True)
class Quarantine:
    """Quarantined records of a stream: in total and in the last hour, by reason code."""

    total: int
    last_hour: int
    by_reason: Mapping[str, tuple[int, int]]  # reason -> (total, last hour)


@dataclass
class StreamView:
    """One stream as the operator views and ``kafkalake status`` show it."""

    name: str
    dag_id: str
    topics: list[str]
    subject: str
    tables: list[str]
    state: str
    state_reason: str
    paused: bool | None = None
    dag_run: dict[str, Any] | None = None
    batch_id: int = -1
    batch_time: str | None = None
    last_progress: str | None = None
    input_rows: int = 0
    rows_per_second: float = 0.0
    lag: int = 0
    lag_by_partition: dict[str, int] = field(default_factory=dict)
    phases_ms: dict[str, int] = field(default_factory=dict)
    reader_version: int | None = None
    writer_versions: dict[str, int] = field(default_factory=dict)
    versions_seen: list[int] | None = None
    quarantine: Quarantine | None = None
    gaps: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None
    updated: str | None = None
    history: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """The view as JSON-able values (shallow: ``asdict`` would copy every history entry)."""
        doc = {f.name: getattr(self, f.name) for f in fields(self)}
        if self.quarantine is not None:
            doc["quarantine"] = {"total": self.quarantine.total, "last_hour": self.quarantine.last_hour,
                                 "by_reason": {reason: {"total": total, "last_hour": hour}
                                               for reason, (total, hour) in self.quarantine.by_reason.items()}}
        return doc


def stream_state(doc: Mapping[str, Any] | None, dag: DagState | None, *, stream: StreamConfig,
                 now: float) -> tuple[str, str]:
    """(state, why): running / stopped / failed / stalled / never run.

    From the status file: a driver that says it runs but made no progress for the health
    window (``health.max_idle_triggers`` trigger intervals; before its first progress, its
    start plus the startup grace) is **stalled**: hung, or killed before it could say so. A
    file is read the same on every host; no pid is looked at. Airflow refines it: a DAG whose
    job task failed (or waits for a retry) and no live driver is **failed**.
    """
    job = (dag.tasks.get(JOB_TASK) if dag is not None else None) or None
    if doc is None:
        if job == "running":
            return RUNNING, "the job task runs; the driver has not written its status yet"
        return NEVER_RUN, "no status file: the stream has not started"
    state = doc.get("state")
    if state in (RUNNING, STARTING):
        trigger = float(doc.get("trigger_seconds") or stream.trigger_seconds)
        window = stream.health.max_idle_triggers * trigger
        last = doc.get("last_progress_epoch")
        if last is not None:
            idle = now - float(last)
        else:
            started = iso_to_epoch(doc.get("started"))
            idle = now - ((started if started is not None else now) + STARTUP_GRACE_S)
        if idle > window:
            return STALLED, (f"no progress for {idle:.0f}s (> {window:g}s = health.max_idle_triggers x trigger): "
                             "the driver is hung or gone")
        if state == STARTING:
            return RUNNING, "starting: no batch yet"
        return RUNNING, f"last progress {max(idle, 0.0):.0f}s ago"
    if state == FAILED:
        return FAILED, "the driver failed" + (f" (job task: {job})" if job else "")
    if job in ("failed", "up_for_retry", "upstream_failed"):
        return FAILED, f"the job task {JOB_TASK} is {job}"
    if state == STOPPED:
        return STOPPED, "stopped at a batch boundary"
    return str(state or "?"), "unknown state in the status file"


def read_gaps(path: Path) -> list[dict[str, Any]]:
    """Accepted data-loss gaps (``fail_on_data_loss: false``), one per lost offset range."""
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return []
    gaps = []
    for line in lines:
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        for gap in entry.get("gaps", []):
            gaps.append({**gap, "detected": entry.get("detected"), "recorded": entry.get("recorded")})
    return gaps


def stream_view(
    settings: Settings,
    stream: StreamConfig,
    *,
    dag: DagState | None = None,
    now: float | None = None,
    history: bool = True,
) -> StreamView:
    """One stream's view from its files (and Airflow's state when given)."""
    now = time.time() if now is None else now
    paths = stream_paths(settings, stream)
    doc = read_status(paths.status_file)
    state, why = stream_state(doc, dag, stream=stream, now=now)
    view = StreamView(
        name=stream.name, dag_id=f"stream_{stream.name}", topics=list(stream.topics), subject=stream.subject,
        tables=list(stream.all_tables), state=state, state_reason=why,
        paused=None if dag is None else dag.is_paused,
        dag_run=None if dag is None or dag.run_id is None else {
            "run_id": dag.run_id, "state": dag.run_state, "start": dag.run_start, "tasks": dict(dag.tasks)},
        gaps=read_gaps(paths.gaps_file),
    )
    if doc is None:
        return view
    queries = list(doc.get("queries", {}).values())
    last = max(queries, key=lambda q: q.get("batch_id", -1), default={})
    view.batch_id = max((q.get("batch_id", -1) for q in queries), default=-1)
    view.batch_time = last.get("progress_time")
    view.last_progress = doc.get("last_progress")
    view.input_rows = sum(q.get("input_rows", 0) for q in queries)
    view.rows_per_second = round(sum(q.get("rows_per_second", 0.0) for q in queries), 1)
    view.lag = int(doc.get("lag", 0) or 0)
    view.lag_by_partition = {tp: n for q in queries for tp, n in sorted(q.get("offsets_behind_latest", {}).items())}
    view.phases_ms = dict(last.get("durations_ms", {}))
    plan = doc.get("decode_plan") or {}
    view.reader_version = (plan.get("reader") or {}).get("version")
    view.writer_versions = {str(k): int(v) for k, v in (plan.get("writers") or {}).items()}
    view.error = doc.get("error")
    view.updated = doc.get("updated")
    if history:
        view.history = read_history(history_file(paths.status_file), window_s=CHART_WINDOW_S, now=now)
    return view


def stream_views(
    settings: Settings,
    *,
    dags: Mapping[str, DagState] | None = None,
    only: set[str] | None = None,
    now: float | None = None,
    history: bool = True,
) -> list[StreamView]:
    """Every stream of streams.yaml (those whose DAG id is in ``only``, when given), in file order.
    Raises :class:`~kafkalake.stream.config.StreamConfigError` for a broken streams.yaml."""
    now = time.time() if now is None else now
    views = []
    for stream in load_streams(settings.streams_file).values():
        dag_id = f"stream_{stream.name}"
        if only is not None and dag_id not in only:
            continue
        views.append(stream_view(settings, stream, dag=(dags or {}).get(dag_id), now=now, history=history))
    return views


def status_table(views: list[StreamView]) -> list[str]:
    """The lines ``kafkalake status`` prints for the streams: the view's own figures."""
    lines = [f"{'stream':14} {'state':9} {'batch':>6} {'rows':>9} {'rows/s':>9} {'lag':>9} {'last progress':21} error"]
    for view in views:
        if view.state == NEVER_RUN:
            lines.append(f"{view.name:14} {view.state:9}")
            continue
        lines.append(f"{view.name:14} {view.state:9} {view.batch_id:>6} {view.input_rows:>9,} "
                     f"{view.rows_per_second:>9,.0f} {view.lag:>9,} {str(view.last_progress or '-'):21} "
                     f"{view.error or ''}")
    return lines
