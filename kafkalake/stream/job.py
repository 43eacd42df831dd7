"""The streaming ingest job: Kafka -> decode (kafkalake.stream.decode) -> the stream's Iceberg tables.

Exactly once (docs/architecture.md: Exactly once into the lake): the Kafka offsets of every
micro-batch are in the checkpoint, and :class:`kafkalake.stream.sink.IcebergBatchSink` commits
each batch to each table at most once (commits carry the query id and batch id). A driver
killed with SIGKILL leaves at most files no snapshot references, which no reader sees; the
restarted query redoes that batch for the tables that miss it.

The tables are created at the first start from the registry's latest schema.

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
from kafkalake.catalog.config import catalog_config
from kafkalake.catalog.iceberg import CATALOG_UNAVAILABLE, CatalogUnavailable
from kafkalake.config import ConfigError, Settings
from kafkalake.errors import ExitCode, KafkalakeError
from kafkalake.schema.model import SchemaError
from kafkalake.spark.session import kafka_reader
from kafkalake.stream.checkpoint import _record_batch_gaps, _record_start_gaps
from kafkalake.stream.config import StreamConfig, StreamConfigError, StreamPaths, stream_paths
from kafkalake.stream.decode import DecodePlanError, decode, decode_plan, decode_plan_summary
from kafkalake.stream.health import STARTUP_GRACE_S
from kafkalake.stream.sink import IcebergBatchSink
from kafkalake.stream.status import (
    FAILED,
    STOPPED,
    StatusWriter,
    add_status_listener,
    progress_summary,
)
from kafkalake.stream.watchdog import Watchdog

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


#: Errors in what the job is asked to run: the stream's declaration in streams.yaml, the
#: registry subject it reads, the KAFKALAKE_* settings. The same arguments are refused again on
#: every start, so they exit with USAGE, one of :data:`kafkalake.errors.FINAL_EXIT_CODES`
#: (a supervisor must not retry them), not with ERROR, which a crashed interpreter also gives.
REFUSED_DECLARATION: tuple[type[Exception], ...] = (StreamConfigError, DecodePlanError, SchemaError, ConfigError)


def exit_code_for(exc: Exception) -> int:
    """The job's exit code for an error it prints as one line."""
    if isinstance(exc, REFUSED_DECLARATION):
        return ExitCode.USAGE
    return int(getattr(exc, "exit_code", ExitCode.ERROR))


def acquire_driver_lock(lock_path: Path, stream: str) -> FileLock:
    """Exclusive lock on the stream's ``.driver.lock``; released when the process dies (even kill -9)."""
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
        .option("includeHeaders", "true")
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
    sink: IcebergBatchSink | None,
    debug_sink: str | None = None,
) -> list[StreamingQuery]:
    """The stream's one query: decoded rows into ``sink`` (its Iceberg tables), or a debug sink."""
    if debug_sink:
        writer = table.writeStream.format(debug_sink).queryName(f"{stream.name}_{debug_sink}")
        writer = writer.option("truncate", "false") if debug_sink == "console" else writer
    else:
        assert sink is not None
        writer = (
            table.writeStream.queryName(stream.name)
            .option("checkpointLocation", str(paths.checkpoint))
            .foreachBatch(sink)
        )
    writer = writer.trigger(availableNow=True) if available_now else writer.trigger(processingTime=stream.trigger)
    return [writer.outputMode("append").start()]


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
        lock = acquire_driver_lock(paths.driver_lock, stream.name)
    paths.stop_file.unlink(missing_ok=True)
    paths.kill_file.unlink(missing_ok=True)  # meant for a driver before this one
    status = StatusWriter(stream=stream.name, path=paths.status_file, trigger_seconds=stream.trigger_seconds,
                          host=settings.host_name)
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
    table = decode(kafka_source(spark, settings, stream), plan)
    sink = None
    if not debug_sink:
        sink = IcebergBatchSink(spark, catalog_config(settings), stream, plan, paths.checkpoint)
        created = sink.ensure_tables(table)
        status.doc["tables"] = {name: catalog_config(settings).identifier(name) for name in stream.all_tables}
        if created:
            log.warning("stream %s: created tables %s", stream.name, ", ".join(created))
    watchdog = Watchdog(stream=stream.name, kill_file=paths.kill_file, status=status,
                        window_s=stream.health.max_idle_triggers * stream.trigger_seconds,
                        startup_grace_s=STARTUP_GRACE_S)
    watchdog.start()
    try:
        queries = _run_queries(table, stream, paths, status, available_now=available_now, sink=sink,
                               debug_sink=debug_sink)
    finally:
        watchdog.stop()
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
            spark.sql(f"select schema_version, reason, count(*) as n from {query.name} "
                      "group by schema_version, reason").show()
    return 0


def _run_queries(
    table: DataFrame,
    stream: StreamConfig,
    paths: StreamPaths,
    status: StatusWriter,
    *,
    available_now: bool,
    sink: IcebergBatchSink | None,
    debug_sink: str | None,
) -> list[StreamingQuery]:
    """Start the queries and wait for them; restart in place after SPARK-55271, fail loudly otherwise."""
    restarts = 0
    while True:
        try:
            queries = start_queries(table, stream, paths, available_now=available_now, sink=sink, debug_sink=debug_sink)
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
            unavailable = catalog_unavailable_line(exc)
            if unavailable is not None:
                # the batch was not committed; the checkpoint re-runs it once the catalog answers
                raise CatalogUnavailable(f"stream {stream.name!r} stopped: {unavailable}; it resumes from its "
                                         "checkpoint when started again, nothing is lost") from None
            raise


def catalog_unavailable_line(exc: BaseException) -> str | None:
    """The sink's :class:`CatalogUnavailable` line inside a failed query's exception, if any."""
    for line in str(exc).splitlines():
        at = line.find(CATALOG_UNAVAILABLE)
        if at >= 0:
            return line[at:].strip()[:400]
    return None


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
