"""The streaming ingest job: Kafka -> decode (kafkalake.stream.decode) -> landing zone file sink(s).

Exactly once (docs/architecture.md: Exactly once into the lake) comes from Spark: the Kafka
offsets of every micro-batch are in the checkpoint, and the file sink's ``_spark_metadata``
commit log decides which files exist.
A driver killed with SIGKILL leaves at most uncommitted files, which readers going through
Spark never see; the restarted query redoes that batch.

Never two drivers on one checkpoint: the driver holds an exclusive ``flock`` on a lock file in
the stream's checkpoint folder for its whole life; a second driver exits at once with a
one-line error (the first one keeps running).

Graceful stop: ``kafkalake stream stop NAME`` (or the schema-migration DAG) creates the
stream's stop file; the driver waits until no trigger is active (a batch boundary) and stops
the queries there.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kafkalake._files import FileLock, LockHeld, exclusive_lock
from kafkalake.config import Settings
from kafkalake.errors import ExitCode, KafkalakeError
from kafkalake.spark.session import kafka_reader
from kafkalake.stream.checkpoint import _record_batch_gaps, _record_start_gaps
from kafkalake.stream.config import StreamConfig, StreamPaths, stream_paths
from kafkalake.stream.decode import PARTITION_COLUMNS, decode, decode_plan, decode_plan_summary
from kafkalake.stream.status import (
    FAILED,
    STOPPED,
    StatusWriter,
    add_status_listener,
    progress_summary,
)

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession
    from pyspark.sql.streaming import StreamingQuery

log = logging.getLogger(__name__)

DEBUG_SINKS = ("console", "memory")


class StreamDataLossError(KafkalakeError):
    """Offsets the stream had not read yet are gone from Kafka and the stream refuses the gap."""

    exit_code = ExitCode.DATA_LOSS


def is_data_loss(exc: BaseException) -> bool:
    text = str(exc)
    return "failOnDataLoss" in text or "are gone" in text or "DATA_LOSS" in text


class StreamBusyError(KafkalakeError):
    """Another driver holds this stream's checkpoint."""

    exit_code = ExitCode.STREAM_BUSY


def acquire_driver_lock(folder: Path, stream: str) -> FileLock:
    """Exclusive lock on ``folder/.driver.lock``; released when the process dies (even kill -9)."""
    lock_path = folder / ".driver.lock"
    try:
        lock = exclusive_lock(lock_path, wait=False)
    except LockHeld as held:
        raise StreamBusyError(
            f"stream {stream!r} is already running (driver pid {held.holder or 'unknown'} holds {lock_path}); "
            f"stop it first with `kafkalake stream stop {stream}`"
        ) from None
    lock.write_holder(f"{os.getpid()}\n")
    return lock


def kafka_source(spark: SparkSession, settings: Settings, stream: StreamConfig) -> DataFrame:
    reader = (
        kafka_reader(spark.readStream, settings.bootstrap_servers, stream.topics)
        .option("startingOffsets", stream.starting_offsets)
        .option("failOnDataLoss", str(stream.fail_on_data_loss).lower())
    )
    if stream.max_offsets_per_trigger:
        reader = reader.option("maxOffsetsPerTrigger", stream.max_offsets_per_trigger)
    return reader.load()


def start_queries(
    table: DataFrame,
    stream: StreamConfig,
    paths: StreamPaths,
    *,
    available_now: bool,
    reader_record: tuple[str, str],
    debug_sink: str | None = None,
) -> list[StreamingQuery]:
    """One file-sink query per format (partitioned zone/dt/hour), or one debug sink."""
    queries = []
    if debug_sink:
        writer = table.writeStream.format(debug_sink).queryName(f"{stream.name}_{debug_sink}")
        writer = writer.option("truncate", "false") if debug_sink == "console" else writer
        writer = writer.trigger(availableNow=True) if available_now else writer.trigger(processingTime=stream.trigger)
        return [writer.outputMode("append").start()]
    record_name, record_namespace = reader_record
    for fmt in stream.sink_formats:
        writer = (
            table.writeStream.format(fmt)
            .queryName(f"{stream.name}_{fmt}")
            .outputMode("append")
            .option("path", str(paths.landing[fmt]))
            .option("checkpointLocation", str(paths.checkpoints[fmt]))
            .partitionBy(*PARTITION_COLUMNS)
        )
        if fmt == "avro":
            # the registry's record name, so readers can resolve the files with the registry
            # schema; deflate, because every Avro reader has it (fastavro needs an extra
            # package for Spark's default, snappy)
            writer = (
                writer.option("recordName", record_name)
                .option("recordNamespace", record_namespace)
                .option("compression", "deflate")
            )
        writer = writer.trigger(availableNow=True) if available_now else writer.trigger(processingTime=stream.trigger)
        queries.append(writer.start())
    return queries


def run_stream(
    spark: SparkSession,
    settings: Settings,
    stream: StreamConfig,
    *,
    available_now: bool = False,
    debug_sink: str | None = None,
) -> int:
    """Run until stopped (stop file), finished (available-now) or failed. Returns an exit code."""
    from kafkalake.schema.registry import Registry

    paths = stream_paths(settings, stream)
    lock = None
    if not debug_sink:
        lock = acquire_driver_lock(paths.checkpoints[stream.sink_formats[0]].parent, stream.name)
    paths.stop_file.unlink(missing_ok=True)
    status = StatusWriter(stream=stream.name, path=paths.status_file, trigger_seconds=stream.trigger_seconds)
    plan = decode_plan(Registry(settings.schemas_dir), stream.subject)
    log.warning("stream %s: decode plan %s", stream.name, json.dumps(decode_plan_summary(plan)))
    status.doc["decode_plan"] = decode_plan_summary(plan)
    status.doc["available_now"] = available_now

    on_batch = None
    if not stream.fail_on_data_loss and not debug_sink:
        _record_start_gaps(settings, stream, paths)

        def record_batch_gaps(_name: str, summary: dict[str, Any]) -> None:
            _record_batch_gaps(settings, stream, paths, summary)

        on_batch = record_batch_gaps

    add_status_listener(spark, status, on_batch=on_batch)
    table = decode(kafka_source(spark, settings, stream), plan, date_dt=True)
    try:
        queries = _run_queries(
            table, stream, paths, status, available_now=available_now,
            reader_record=_record_name(plan.reader.schema_json), debug_sink=debug_sink,
        )
    finally:
        _drain_listener_bus(spark)
        if lock is not None:
            lock.close()
    for query in queries:  # the listener may have missed the last batch if the JVM was quick
        last = query.lastProgress
        if last and last.get("batchId", -1) > status.query(query.name).get("batch_id", -1):
            summary = progress_summary(last)
            status.on_progress(query.name, summary)
            if on_batch is not None:
                on_batch(query.name, summary)
    status.set_state(STOPPED)
    paths.stop_file.unlink(missing_ok=True)
    if debug_sink == "memory":
        for query in queries:
            spark.sql(f"select zone, reason, count(*) as n from {query.name} group by zone, reason").show()
    return 0


def _record_name(reader_json: str) -> tuple[str, str]:
    """(name, namespace) of the reader schema's record: what the Avro sink names its records."""
    reader_doc = json.loads(reader_json)
    full_name = reader_doc["name"]
    namespace = reader_doc.get("namespace") or (full_name.rsplit(".", 1)[0] if "." in full_name else "")
    return full_name.rsplit(".", 1)[-1], namespace


def _run_queries(
    table: DataFrame,
    stream: StreamConfig,
    paths: StreamPaths,
    status: StatusWriter,
    *,
    available_now: bool,
    reader_record: tuple[str, str],
    debug_sink: str | None,
) -> list[StreamingQuery]:
    """Start the queries and wait for them; restart in place after SPARK-55271, fail loudly otherwise."""
    restarts = 0
    while True:
        try:
            queries = start_queries(
                table, stream, paths, available_now=available_now, reader_record=reader_record, debug_sink=debug_sink
            )
        except Exception as exc:
            status.set_state(FAILED, error=str(exc).splitlines()[0])
            raise
        stopper = threading.Thread(target=_watch_stop_file, args=(paths, queries), daemon=True, name="stop-watcher")
        stopper.start()
        try:
            for query in queries:
                query.awaitTermination()
            return queries
        except Exception as exc:  # StreamingQueryException: the query failed
            if is_spark_55271(exc) and restarts < MAX_SPARK_55271_RESTARTS:
                restarts += 1
                log.warning(
                    "stream %s: Spark 4.1.1 bug SPARK-55271 (NPE in Kafka source metrics on the first "
                    "batch after a restart; that batch is committed) -- restarting the query in place "
                    "(%d/%d)", stream.name, restarts, MAX_SPARK_55271_RESTARTS,
                )
                for query in queries:
                    if query.isActive:
                        query.stop()
                continue
            status.set_state(FAILED, error=str(exc).splitlines()[0][:2000])
            if is_data_loss(exc) and stream.fail_on_data_loss:
                raise StreamDataLossError(
                    f"stream {stream.name!r} stopped: Kafka no longer has offsets it had not read yet "
                    "(retention or deletion outran the stream). To accept the gap deliberately, set "
                    f"`fail_on_data_loss: false` for {stream.name!r} in streams.yaml and run again; the gap "
                    f"is then recorded in {paths.gaps_file}"
                ) from None
            raise


#: In-place restarts allowed for SPARK-55271 per driver (one per recovery is what it takes).
MAX_SPARK_55271_RESTARTS = 3


def is_spark_55271(exc: BaseException) -> bool:
    """Spark 4.1.1's Kafka source throws an NPE while reporting metrics for the first batch
    after a restart that re-runs a batch from the offset log (SPARK-55271 / SPARK-57438).
    The batch itself is committed before the report, so restarting the query resumes cleanly.
    """
    text = str(exc)
    return (
        '"scala.collection.IterableOps.map(scala.Function1)" because the return value of "scala.Option.get()" is null'
        in text
    )


def _drain_listener_bus(spark: SparkSession, timeout_ms: int = 10_000) -> None:
    """Let queued listener events reach Python before the driver exits (they are async)."""
    try:
        spark.sparkContext._jsc.sc().listenerBus().waitUntilEmpty(timeout_ms)
    except Exception as exc:  # best effort: the status file is completed from lastProgress
        log.warning("listener bus did not drain: %s", str(exc).splitlines()[0])


def _watch_stop_file(paths: StreamPaths, queries: list[StreamingQuery]) -> None:
    """Stop at a batch boundary once the stop file appears."""
    while any(q.isActive for q in queries):
        if paths.stop_file.exists():
            for query in queries:
                while query.isActive and query.status.get("isTriggerActive"):
                    time.sleep(0.01)
                if query.isActive:
                    query.stop()
            return
        time.sleep(0.5)
