"""Per-stream status files, written by a StreamingQueryListener in the driver.

The Kafka source commits no consumer-group offsets, so lag is computed from the query's own
progress: per partition, the source's ``latestOffset`` minus the batch's ``endOffset``.
Files are replaced atomically (temp + rename): the health sensor and ``kafkalake status``
never read half a file.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kafkalake._files import write_json_atomic

RUNNING, STOPPED, FAILED, STARTING = "running", "stopped", "failed", "starting"
#: what a reader concludes when a running driver's pid is gone (never written to the file)
DEAD = "dead"


def now_iso() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def read_status(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def with_liveness(doc: dict[str, Any]) -> dict[str, Any]:
    """``doc`` with state ``dead`` when it says running but its driver pid is gone (killed, crashed).

    A driver killed with -9 cannot write its last state: only its pid tells.
    """
    from kafkalake.stream.driver import pid_alive

    if doc.get("state") in (RUNNING, STARTING) and not pid_alive(int(doc.get("pid") or 0)):
        return {**doc, "state": DEAD, "error": f"driver pid {doc.get('pid')} is gone (killed or crashed)"}
    return doc


def _offsets(text: Any) -> dict[str, int]:
    """Kafka source offsets JSON ({"topic": {"0": 12}}) -> {"topic-0": 12}."""
    if not text:
        return {}
    try:
        doc = json.loads(text) if isinstance(text, str) else text
    except ValueError:  # not a Kafka offsets document (e.g. another source kind)
        return {}
    if not isinstance(doc, dict):
        return {}
    return {f"{topic}-{part}": int(off) for topic, parts in doc.items() for part, off in parts.items()}


def progress_summary(progress: dict[str, Any]) -> dict[str, Any]:
    """The fields operators and the health sensor need from a StreamingQueryProgress.

    Takes the progress as its JSON document (the listener's ``progress().json()``, or
    ``query.lastProgress``). Spark leaves out a rate that is not a number (no rows, no time).
    ``durations_ms``: where the batch's time went, as Spark splits it (``latestOffset``,
    ``walCommit``, ``queryPlanning``, ``addBatch`` = the tasks and the sink's commit,
    ``commitOffsets``, ``triggerExecution`` = all of it); a slow stream shows there whether
    the driver or the tasks are the bottleneck.
    """
    behind: dict[str, int] = {}
    ranges: dict[str, list[int]] = {}
    for source in progress.get("sources", []):
        start, end = _offsets(source.get("startOffset")), _offsets(source.get("endOffset"))
        latest = _offsets(source.get("latestOffset"))
        for tp, end_offset in end.items():
            behind[tp] = max(0, latest.get(tp, end_offset) - end_offset)
            ranges[tp] = [start.get(tp, end_offset), end_offset]
    duration = progress.get("batchDuration", progress.get("durationMs", {}).get("triggerExecution", 0))
    return {
        "batch_id": progress["batchId"],
        "input_rows": progress.get("numInputRows", 0),
        "rows_per_second": round(progress.get("processedRowsPerSecond") or 0.0, 1),
        "batch_duration_ms": duration,
        "durations_ms": {phase: int(ms) for phase, ms in sorted(progress.get("durationMs", {}).items())},
        "offsets_behind_latest": behind,
        "lag": sum(behind.values()),
        "offset_ranges": ranges,
        "progress_time": progress.get("timestamp"),
    }


class StatusWriter:
    """Keeps one stream's status document (one entry per query/sink format) on disk."""

    def __init__(self, *, stream: str, path: Path, trigger_seconds: float) -> None:
        self.path = path
        self.doc: dict[str, Any] = {
            "stream": stream,
            "state": STARTING,
            "pid": os.getpid(),
            "trigger_seconds": trigger_seconds,
            "started": now_iso(),
            "updated": now_iso(),
            "last_progress": None,
            "error": None,
            "queries": {},
        }
        self.flush()

    def flush(self) -> None:
        self.doc["updated"] = now_iso()
        write_json_atomic(self.path, self.doc)

    def query(self, name: str) -> dict[str, Any]:
        return self.doc["queries"].setdefault(name, {})

    def set_state(self, state: str, error: str | None = None) -> None:
        self.doc["state"] = state
        if error is not None:
            self.doc["error"] = error
        self.flush()

    def on_progress(self, name: str, summary: dict[str, Any]) -> None:
        self.query(name).update(summary)
        self.doc["state"] = RUNNING
        self.doc["last_progress"] = now_iso()
        self.doc["last_progress_epoch"] = time.time()
        self.doc["lag"] = sum(q.get("lag", 0) for q in self.doc["queries"].values())
        self.flush()

    def on_idle(self, name: str) -> None:
        """No new data, but the query is alive and keeping up: that counts as progress."""
        self.query(name)["idle_since"] = self.query(name).get("idle_since") or now_iso()
        self.doc["state"] = RUNNING
        self.doc["last_progress"] = now_iso()
        self.doc["last_progress_epoch"] = time.time()
        self.flush()


def add_status_listener(
    spark: Any,
    writer: StatusWriter,
    *,
    on_batch: Callable[[str, dict[str, Any]], None] | None = None,
) -> None:
    """Register a Python StreamingQueryListener that feeds ``writer``.

    It implements Spark's ``PythonStreamingQueryListener`` interface over Py4J itself, as
    pyspark's ``StreamingQueryListener`` does, but takes each progress as ONE JSON string
    (``progress().json()``): pyspark converts a progress field by field, dozens of Py4J round
    trips per micro-batch on the cores the next batch's tasks run on.
    """
    from pyspark.java_gateway import ensure_callback_server_started

    class _Events:
        def __init__(self) -> None:
            self.names: dict[str, str] = {}  # query id -> name: an idle event carries only the id

        # the method names are those of the Java interface StreamingQueryListener
        def onQueryStarted(self, jevent: Any) -> None:
            query_id = jevent.id().toString()
            name = self.names[query_id] = jevent.name() or query_id
            writer.query(name)["run_id"] = jevent.runId().toString()
            writer.set_state(RUNNING)

        def onQueryProgress(self, jevent: Any) -> None:
            progress = json.loads(jevent.progress().json())
            name = self.names.setdefault(progress["id"], progress.get("name") or progress["id"])
            summary = progress_summary(progress)
            if summary["input_rows"]:
                writer.query(name).pop("idle_since", None)
            writer.on_progress(name, summary)
            if on_batch is not None:
                on_batch(name, summary)

        def onQueryIdle(self, jevent: Any) -> None:
            query_id = jevent.id().toString()
            writer.on_idle(self.names.get(query_id, query_id))

        def onQueryTerminated(self, jevent: Any) -> None:
            error = jevent.exception()
            if error.isDefined():
                writer.set_state(FAILED, error=str(error.get()).splitlines()[0][:2000])

        class Java:
            implements = ["org.apache.spark.sql.streaming.PythonStreamingQueryListener"]

    gateway = spark.sparkContext._gateway
    ensure_callback_server_started(gateway)
    listener = gateway.jvm.org.apache.spark.sql.streaming.PythonStreamingQueryListenerWrapper(_Events())
    spark._jsparkSession.streams().addListener(listener)
