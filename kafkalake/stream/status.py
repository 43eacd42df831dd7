"""Per-stream status files, written by a StreamingQueryListener in the driver.

The Kafka source commits no consumer-group offsets, so lag is computed from the query's own
progress: per partition, the source's ``latestOffset`` minus the batch's ``endOffset``.
Files are replaced atomically (temp + rename): the health sensor and ``kafkalake status``
never read half a file.

Beside ``status.json`` the listener keeps ``history.jsonl``, a bounded ring of the last batches
(time, rows, rows/s, lag, duration): the operator views chart the last hour from it without
asking Spark or Kafka anything.
"""

from __future__ import annotations

import json
import os
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kafkalake._files import atomic_write, write_json_atomic

RUNNING, STOPPED, FAILED, STARTING = "running", "stopped", "failed", "starting"
#: what a reader concludes when a running driver's pid is gone (never written to the file)
DEAD = "dead"


def now_iso() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


#: the batch history's file name, next to ``status.json``
HISTORY_FILE = "history.jsonl"
#: the history keeps the batches of this many seconds...
HISTORY_WINDOW_S = 3600.0
#: ...and at most this many (a 1-second trigger: the last hour; the file stays under ~400 KB)
HISTORY_MAX_BATCHES = 3600


def history_file(status_file: Path) -> Path:
    return status_file.with_name(HISTORY_FILE)


class BatchHistory:
    """The last batches of a stream, one JSON line each, replaced atomically after every batch.

    Lines are kept serialised, so a write costs one join and one file replace however long
    the ring is. A restarted driver carries on with the entries its predecessor left.
    """

    def __init__(self, path: Path, *, window_s: float = HISTORY_WINDOW_S,
                 max_batches: int = HISTORY_MAX_BATCHES) -> None:
        self.path, self.window_s = path, window_s
        self._lines: deque[tuple[float, str]] = deque(maxlen=max_batches)
        for entry in read_history(path, window_s=window_s):
            self._lines.append((entry["t"], json.dumps(entry, sort_keys=True)))

    def add(self, query: str, summary: dict[str, Any], *, now: float | None = None, write: bool = True) -> None:
        """Append one batch (``write=False``: keep it in memory until the next write)."""
        stamp = round(time.time() if now is None else now, 3)
        entry = {
            "t": stamp, "query": query, "batch": summary["batch_id"], "rows": summary["input_rows"],
            "rps": summary["rows_per_second"], "lag": summary["lag"], "ms": summary["batch_duration_ms"],
        }
        self._lines.append((stamp, json.dumps(entry, sort_keys=True)))
        while self._lines and self._lines[0][0] < stamp - self.window_s:
            self._lines.popleft()
        if write:
            self.write()

    def write(self) -> None:
        atomic_write(self.path, "".join(line + "\n" for _, line in self._lines))

    def __len__(self) -> int:
        return len(self._lines)


def read_history(path: Path, *, window_s: float | None = None, now: float | None = None) -> list[dict[str, Any]]:
    """The entries of a history file, oldest first (those of the last ``window_s`` seconds)."""
    try:
        text = path.read_text()
    except OSError:
        return []
    entries = []
    for line in text.splitlines():
        try:
            entry = json.loads(line)
        except ValueError:  # never written so (atomic replace), but a hand-edited file must not break a view
            continue
        if isinstance(entry, dict) and isinstance(entry.get("t"), (int, float)):
            entries.append(entry)
    if window_s is not None:
        newest = (time.time() if now is None else now)
        entries = [e for e in entries if e["t"] >= newest - window_s]
    return entries


def read_status(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def with_liveness(doc: dict[str, Any]) -> dict[str, Any]:
    """``doc`` with state ``dead`` when it says running but its driver pid is gone (killed, crashed).

    A driver killed with -9 cannot write its last state: only its pid tells. (On the driver's
    host only; the operator views judge staleness instead, which every host can see.)
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

    def __init__(self, *, stream: str, path: Path, trigger_seconds: float, host: str | None = None) -> None:
        self.path = path
        self.history = BatchHistory(history_file(path))
        self.doc: dict[str, Any] = {
            "stream": stream,
            "state": STARTING,
            "pid": os.getpid(),
            # where the pid means something; a supervisor on another host goes by the heartbeat
            "host": host,
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
        self.history.add(name, summary)

    def on_idle(self, name: str) -> None:
        """No new data, but the query is alive and keeping up: that counts as progress.

        Idle means the query has read all Kafka has: its lag is 0, also for a driver that
        resumed a caught-up checkpoint and has not run a batch yet.
        """
        query = self.query(name)
        query["idle_since"] = query.get("idle_since") or now_iso()
        query["lag"] = 0
        self.doc["lag"] = sum(q.get("lag", 0) for q in self.doc["queries"].values())
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
