"""End-to-end latency: produce -> readable in the stream's Iceberg table, for the running stream job.

The project's stream runs as in production (``kafkalake stream run NAME``, no --available-now)
with a 5 s trigger on ``local[2]``; one producer worker sends fridge records (30 % v1) at
5,000 records/s for 60 s (300,000 records; ``--records`` changes the count, so the duration).

Per record: latency = (moment it became readable) - (its Kafka timestamp). Topics use
LogAppendTime, so the timestamp is the broker's append time, i.e. the produce time plus the
producer's linger (25 ms). A row of an Iceberg table is readable, to any engine, once a
committed snapshot holds its data file. The benchmark polls the table through pyiceberg (no
JVM) every 0.5 s; for each snapshot it has not seen, it reads the Kafka timestamps of the
data files that snapshot added (its manifests' ADDED entries) and takes the snapshot's commit
time (``timestamp-ms``) as the readable moment (the poll time, up to 0.5 s later, is reported
too as an upper bound).

A warm-up (5,000 records, before the clock starts) lets the first batch pay the query's
code generation; its records are excluded by their timestamps.

Goal: p95 <= 10 s at 5,000 records/s with a 5 s trigger.
"""

from __future__ import annotations

import json
import os
import platform
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from benchmarks.ingest_bench import SparkProcess, _stream_settings, batch_seconds, terminate_as_exit
from benchmarks.platform import bench_kafka, results_dir
from kafkalake.config import Settings, get_settings
from kafkalake.kafka.topics import create_topic
from kafkalake.produce.fleet import fleet_from_registry
from kafkalake.produce.producer import ProduceReport, produce_parallel
from kafkalake.schema.registry import Registry
from kafkalake.spark.submit import stream_conf
from kafkalake.stream.config import stream_paths
from kafkalake.stream.driver import request_stop
from kafkalake.stream.status import read_status

RATE = 5_000
RECORDS = 300_000  # 60 s at RATE
TRIGGER = "5 seconds"
WARMUP = 5_000
POLL_SECONDS = 0.5
GOAL_P95 = 10.0
START_TIMEOUT = 300.0
DRAIN_TIMEOUT = 60.0
STOP_TIMEOUT = 120.0


class TableWatcher:
    """Polls an Iceberg table's snapshots (pyiceberg); records when each committed row became readable."""

    def __init__(self, settings: Settings, table: str) -> None:
        self.settings, self.table_name = settings, table
        self._table: Any = None
        self.seen_snapshots: set[int] = set()
        self.batches: list[dict[str, Any]] = []  # per new snapshot: rows, readable time
        self.poll_errors = 0
        self.poll_seconds = 0.0  # the longest poll
        self._stamps: list[Any] = []  # numpy arrays of Kafka timestamps (s)
        self._visible: list[Any] = []
        self._detected: list[Any] = []

    def _refresh(self) -> Any:
        from kafkalake.catalog.reading import load

        self._table = load(self.settings, self.table_name) if self._table is None else self._table.refresh()
        return self._table

    def poll(self) -> int:
        """Read the files of snapshots committed since the last poll; the number of new rows."""
        detected = time.time()
        try:
            table = self._refresh()
        except Exception:  # the catalog's SQLite file locked by a commit: the next poll sees it
            self.poll_errors += 1
            return 0
        try:
            return self._read_new(table, detected)
        finally:
            self.poll_seconds = max(self.poll_seconds, time.time() - detected)

    def _read_new(self, table: Any, detected: float) -> int:
        """The rows of the data files each unseen snapshot added, stamped with its commit time."""
        import numpy as np
        import pyarrow.parquet as pq
        from pyiceberg.manifest import ManifestEntryStatus

        new_rows = 0
        for snapshot in sorted(table.snapshots(), key=lambda s: s.sequence_number or 0):
            if snapshot.snapshot_id in self.seen_snapshots:
                continue
            self.seen_snapshots.add(snapshot.snapshot_id)
            visible = snapshot.timestamp_ms / 1000
            rows = 0
            for manifest in snapshot.manifests(table.io):
                if manifest.added_snapshot_id != snapshot.snapshot_id:
                    continue
                for entry in manifest.fetch_manifest_entry(table.io):
                    if entry.status != ManifestEntryStatus.ADDED:
                        continue
                    path = Path(unquote(urlparse(entry.data_file.file_path).path))
                    column = pq.read_table(path, columns=["timestamp"])["timestamp"]
                    stamps = column.to_numpy().astype("datetime64[us]").astype(np.int64) / 1e6
                    self._stamps.append(stamps)
                    self._visible.append(np.full(len(stamps), visible))
                    self._detected.append(np.full(len(stamps), detected))
                    rows += len(stamps)
            if rows:
                self.batches.append({"snapshot_id": snapshot.snapshot_id, "rows": rows, "readable_at": visible,
                                     "batch": (snapshot.summary or {}).get("kafkalake.batch")})
            new_rows += rows
        return new_rows

    def latencies(self, since: float) -> tuple[Any, Any]:
        """(readable - timestamp, poll - timestamp) in seconds for rows stamped at or after ``since``."""
        import numpy as np

        if not self._stamps:
            return np.array([]), np.array([])
        stamps = np.concatenate(self._stamps)
        keep = stamps >= since
        return (np.concatenate(self._visible)[keep] - stamps[keep], np.concatenate(self._detected)[keep] - stamps[keep])

    def rows_since(self, since: float) -> int:
        return int(sum((s >= since).sum() for s in self._stamps))


def _percentiles(values: Any) -> dict[str, float | None]:
    import numpy as np

    if len(values) == 0:
        return {"p50": None, "p95": None, "p99": None, "max": None}
    p50, p95, p99 = np.percentile(values, [50, 95, 99])
    return {"p50": round(float(p50), 3), "p95": round(float(p95), 3), "p99": round(float(p99), 3),
            "max": round(float(values.max()), 3)}


def _wait_running(job: SparkProcess, status_file: Path) -> float:
    """Until the driver's listener reports the query started; seconds it took."""
    started = time.perf_counter()
    next_tick = started + 10
    while True:
        if job.poll() is not None:
            raise RuntimeError(f"the stream job exited {job.poll()} while starting\n{job.tail()}")
        status = read_status(status_file) or {}
        if status.get("state") == "running" and status.get("queries"):
            return time.perf_counter() - started
        now = time.perf_counter()
        if now - started > START_TIMEOUT:
            raise TimeoutError(f"the stream job did not start within {START_TIMEOUT:.0f}s\n{job.tail()}")
        if now >= next_tick:
            next_tick += 10
            print(f"    starting the stream job: {now - started:.0f}s", flush=True)
        time.sleep(0.5)


def main(*, records: int | None = None) -> int:
    count = records or RECORDS
    registry = Registry(get_settings().schemas_dir)
    print(f"latency benchmark: {count:,} records at {RATE:,}/s (~{count / RATE:.0f} s), one producer worker, "
          f"stream trigger {TRIGGER!r}, readable = a committed snapshot of the stream's Iceberg table", flush=True)
    with terminate_as_exit(), bench_kafka() as settings:
        topic = f"bench-latency-{int(time.time())}"
        create_topic(settings.bootstrap_servers, topic, partitions=2)
        stream_settings, stream = _stream_settings(settings, "latency", topic, trigger=TRIGGER)
        paths = stream_paths(stream_settings, stream)
        watcher = TableWatcher(stream_settings, stream.tables["parquet"])
        job = SparkProcess(stream_settings, "stream_ingest", [stream.name], conf=stream_conf(stream),
                           log_path=settings.state_dir / "logs" / "latency.log")
        try:
            startup = _wait_running(job, paths.status_file)
            print(f"  stream job running after {startup:.1f}s; warm-up with {WARMUP:,} records", flush=True)
            warm = fleet_from_registry(registry, devices=100, v1_fraction=0.3, seed=1)
            produce_parallel(bootstrap_servers=settings.bootstrap_servers, topic=topic, workers=1,
                             shard_messages=lambda s, n: warm.messages(WARMUP, shard=s, shards=n)).raise_for_loss(topic)
            deadline = time.time() + 120
            while watcher.rows_since(0) < WARMUP:
                if time.time() > deadline or job.poll() is not None:
                    raise RuntimeError(f"warm-up records did not land\n{job.tail()}")
                watcher.poll()
                time.sleep(POLL_SECONDS)
            time.sleep(0.1)

            fleet = fleet_from_registry(registry, devices=100, v1_fraction=0.3, seed=7)
            produced = {"n": 0}
            outcome: dict[str, Any] = {}

            def produce() -> None:
                try:
                    outcome["report"] = produce_parallel(
                        bootstrap_servers=settings.bootstrap_servers, topic=topic, workers=1, rate=RATE,
                        shard_messages=lambda s, n: fleet.messages(count, shard=s, shards=n),
                        on_progress=lambda done, _secs: produced.__setitem__("n", done), progress_every=RATE,
                    )
                except BaseException as exc:  # re-raised in the main thread
                    outcome["error"] = exc

            watcher.poll_seconds = 0.0  # the first polls also paid pyiceberg's imports
            measure_start = time.time()
            producer = threading.Thread(target=produce, name="bench-producer", daemon=True)
            producer.start()
            next_tick = time.time() + 5
            drain_deadline = None
            while True:
                watcher.poll()
                landed = watcher.rows_since(measure_start)
                now = time.time()
                if now >= next_tick:
                    next_tick += 5
                    so_far = _percentiles(watcher.latencies(measure_start)[0])
                    p95 = f"{so_far['p95']:.2f}s" if so_far["p95"] is not None else "-"
                    print(f"    t=+{now - measure_start:4.0f}s produced {produced['n']:>8,} | landed {landed:>8,} in "
                          f"{len(watcher.batches)} snapshots | p95 so far {p95}", flush=True)
                if job.poll() is not None:
                    raise RuntimeError(f"the stream job exited {job.poll()} while running\n{job.tail()}")
                if not producer.is_alive():
                    if "error" in outcome:
                        raise outcome["error"]
                    report: ProduceReport = outcome["report"]
                    report.raise_for_loss(topic)
                    drain_deadline = drain_deadline or now + DRAIN_TIMEOUT
                    if landed >= report.delivered or now > drain_deadline:
                        break
                time.sleep(max(0.0, POLL_SECONDS - (time.time() - now)))
            produce_seconds = report.seconds
            print(f"  produced {report.delivered:,} records in {produce_seconds:.1f}s "
                  f"({report.delivered / produce_seconds:,.0f}/s); stopping the stream", flush=True)
            request_stop(stream_settings, stream)
            try:
                job.wait(timeout=STOP_TIMEOUT, label="stopping")
            except TimeoutError:  # a batch still running: what it holds is reported as not landed
                print(f"  the stream did not stop within {STOP_TIMEOUT:.0f}s: stopping its process", flush=True)
        finally:
            job.stop()
        watcher.poll()
        batches = batch_seconds(paths.checkpoint)

    readable, detected = watcher.latencies(measure_start)
    landed = int(len(readable))
    stats = _percentiles(readable)
    stats_poll = _percentiles(detected)
    all_landed = landed == report.delivered
    met = all_landed and stats["p95"] is not None and stats["p95"] <= GOAL_P95
    processing = [b["seconds"] for b in batches if b["batch_id"] > 0]
    summary = {
        "benchmark": "latency",
        "records": report.delivered,
        "rate_target": RATE,
        "rate_achieved": round(report.delivered / produce_seconds, 1),
        "trigger": TRIGGER,
        "method": "readable = timestamp-ms of the first snapshot that added the row's data file (pyiceberg, "
                  "polled every 0.5 s); latency = readable - Kafka LogAppendTime timestamp; warm-up records "
                  "excluded",
        "snapshots": len(watcher.batches),
        "poll_errors": watcher.poll_errors,
        "longest_poll_seconds": round(watcher.poll_seconds, 3),
        "latency_seconds": stats,
        "latency_seconds_at_poll": stats_poll,
        "landed": landed,
        "all_landed": all_landed,
        "batches": len(batches),
        "batch_processing_seconds": {
            "mean": round(sum(processing) / len(processing), 3) if processing else None,
            "max": round(max(processing), 3) if processing else None,
        },
        "stream_startup_seconds": round(startup, 1),
        "goal": {"p95_seconds": GOAL_P95, "met": met},
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "load_avg": os.getloadavg()},
        "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    out = results_dir() / "latency.json"
    out.write_text(json.dumps(summary, indent=2) + "\n")
    print(f"latency produce -> readable in the Iceberg table: p50 {stats['p50']}s | p95 {stats['p95']}s | "
          f"p99 {stats['p99']}s | max {stats['max']}s over {landed:,} records "
          f"({'all' if all_landed else 'NOT all'} landed); batch processing "
          f"mean {summary['batch_processing_seconds']['mean']}s; longest table poll {watcher.poll_seconds:.2f}s; "
          f"goal p95 <= {GOAL_P95:.0f}s: "
          f"{'met' if met else 'NOT met'} -> {out}", flush=True)
    return 0 if all_landed else 1
