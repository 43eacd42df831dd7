"""The stream's sink: every micro-batch committed to its Iceberg tables, exactly once.

docs/architecture.md: Exactly once into the lake; Nothing is silently dropped.

One query decodes each Kafka batch once; :class:`IcebergBatchSink` (its ``foreachBatch``)
appends the good rows to the stream's table (one per file format) and the undecodable ones to
the quarantine table. Iceberg commits one table at a time, so each commit is stamped with the
query's id and batch id (:func:`kafkalake.catalog.iceberg.commit_options`). Spark runs the
sink, then records the batch in the checkpoint's ``commits/``; a driver killed in between
re-runs the batch over the same offsets after its restart, and the sink then skips every
table that already holds that batch. So each offset ends up in exactly one of the tables, once.

Most batches have no bad record: the table write counts them on the way (``observe``), and
the quarantine table is written (the batch read again) only when there are some.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kafkalake.catalog.config import CatalogConfig
from kafkalake.catalog.iceberg import (
    TableSpec,
    commit_options,
    ensure_table,
    housekeep,
    is_transient,
    last_committed_batch,
    with_retry,
)
from kafkalake.stream.config import StreamConfig
from kafkalake.stream.decode import DecodePlan, quarantine_rows, table_rows
from kafkalake.testing.faults import crash_point

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

log = logging.getLogger(__name__)


def table_specs(stream: StreamConfig, plan: DecodePlan, decoded: DataFrame) -> list[TableSpec]:
    """The stream's tables: one per file format (reader fields, docs and defaults from the
    registry's reader schema) and the quarantine table (Parquet)."""
    reader = json.loads(plan.reader.schema_json)
    docs = {f["name"]: f.get("doc", "") for f in reader["fields"]}
    defaults = {f["name"]: _iceberg_default(f) for f in reader["fields"] if "default" in f}
    docs.update(META_DOCS)
    columns = table_rows(decoded, plan).schema
    specs = [TableSpec(name, columns, fmt, docs, defaults) for fmt, name in stream.tables.items()]
    specs.append(TableSpec(stream.quarantine_table, quarantine_rows(decoded).schema, "parquet", META_DOCS))
    return specs


META_DOCS = {
    "key": "Kafka record key (raw bytes)",
    "headers": "Kafka record headers",
    "schema_id": "registry id of the schema the record was written with (Confluent header)",
    "schema_version": "version of that schema in its subject",
    "topic": "Kafka topic",
    "partition": "Kafka partition",
    "offset": "Kafka offset",
    "timestamp": "Kafka timestamp (LogAppendTime, UTC); the table is partitioned by its hour",
    "value": "raw Kafka record value",
    "reason": "why the record did not decode (kafkalake.wire.DecodeReason)",
}


def _iceberg_default(avro_field: dict[str, Any]) -> Any:
    """An Avro field default as an Iceberg column default: primitives only (JSON-compatible)."""
    default = avro_field["default"]
    return default if isinstance(default, (bool, int, float, str)) else None


def query_id(checkpoint: Path) -> str:
    """The query's id: Spark writes it to the checkpoint's ``metadata`` at the first start and
    keeps it across restarts, so it names this stream's commits for the checkpoint's life."""
    return str(json.loads((checkpoint / "metadata").read_text())["id"])


class IcebergBatchSink:
    """``foreachBatch`` function: decoded batch -> table(s) + quarantine table, idempotently."""

    def __init__(self, spark: SparkSession, config: CatalogConfig, stream: StreamConfig, plan: DecodePlan,
                 checkpoint: Path) -> None:
        self.spark, self.config, self.stream, self.plan = spark, config, stream, plan
        self.checkpoint = checkpoint
        self._writer: str | None = None
        self._last: dict[str, int] = {}
        self._tables: dict[str, Any] = {}
        self._commits = 0

    def ensure_tables(self, decoded: DataFrame) -> list[str]:
        """Before the query starts: create the missing tables, and evolve each existing table
        of the stream to the reader schema (new columns with their defaults, widened types:
        :mod:`kafkalake.catalog.evolution`; a no-op when the schema rollout did it already).
        Returns the tables created."""
        from kafkalake.catalog.evolution import evolve_table, reader_struct, with_reader_details
        from kafkalake.catalog.iceberg import iceberg_schema_json

        reader = reader_struct(json.loads(self.plan.reader.schema_json))
        created = []
        for spec in table_specs(self.stream, self.plan, decoded):
            table, new = ensure_table(self.spark, self.config, spec)
            self._tables[spec.name] = table
            if new:
                created.append(spec.name)
            elif spec.name in self.stream.tables.values():
                target = with_reader_details(json.loads(iceberg_schema_json(self.spark, spec)), reader)
                evolved = evolve_table(self.spark, table, target, self.config.identifier(spec.name))
                if not evolved.empty:
                    log.warning("stream %s: evolved %s to %s v%d: %s", self.stream.name, spec.name,
                                self.plan.subject, self.plan.reader.version, evolved.describe())
        return created

    def _committed(self, table: str) -> int:
        """The last batch of this query in ``table`` (asked once per driver, then tracked)."""
        if table not in self._last:
            if self._writer is None:
                self._writer = query_id(self.checkpoint)
            found = with_retry(lambda: last_committed_batch(self._tables[table], self._writer),
                               f"read {self.config.identifier(table)}'s history")
            self._last[table] = -1 if found is None else found
            if found is not None:
                log.warning("stream %s: %s already holds batch %d of this query", self.stream.name, table, found)
        return self._last[table]

    def __call__(self, decoded: DataFrame, batch_id: int) -> None:
        from pyspark.sql import Observation
        from pyspark.sql import functions as F

        pending = [t for t in self.stream.all_tables if self._committed(t) < batch_id]
        if not pending:
            return
        bad: int | None = None
        for table in self.stream.tables.values():
            if table not in pending:
                continue
            source, observation = decoded, None
            if bad is None:
                observation = Observation(f"bad_{batch_id}_{table}")
                source = decoded.observe(observation, F.count(F.col("reason")).alias("bad"))
            self._append(table, table_rows(source, self.plan), batch_id)
            if observation is not None:
                bad = int(observation.get["bad"])
            crash_point("stream.between_tables")
        quarantine = self.stream.quarantine_table
        if quarantine in pending:
            if bad is None:
                bad = decoded.where(F.col("reason").isNotNull()).count()
            if bad:
                self._append(quarantine, quarantine_rows(decoded), batch_id)
            self._last[quarantine] = batch_id
        self._commits += 1
        if self._commits % self.stream.housekeeping.every_commits == 0:
            self.housekeep()

    def _append(self, table: str, rows: DataFrame, batch_id: int) -> None:
        """Append with the batch's marker; a catalog failure is retried only after the table
        was asked whether the commit made it (a commit is never made twice)."""
        options = commit_options(self._writer or query_id(self.checkpoint), batch_id)

        def attempt() -> None:
            self._last.pop(table, None)
            if self._committed(table) >= batch_id:
                return
            rows.writeTo(self.config.identifier(table)).options(**options).append()

        try:
            rows.writeTo(self.config.identifier(table)).options(**options).append()
        except Exception as exc:
            if not is_transient(exc):
                raise
            log.warning("stream %s: commit to %s failed (%s); retrying", self.stream.name, table,
                        str(exc).splitlines()[0][:200])
            with_retry(attempt, f"commit batch {batch_id} to {self.config.identifier(table)}")
        self._last[table] = batch_id

    def housekeep(self) -> dict[str, dict[str, Any]]:
        """Expire old snapshots and merge manifests of every table of the stream; what was done, per table."""
        done: dict[str, dict[str, Any]] = {}
        for table in self.stream.all_tables:
            try:
                done[table] = housekeep(self.spark, self._tables[table], self._writer or "", self.stream.housekeeping)
                log.warning("stream %s: housekeeping of %s: %s", self.stream.name, table, done[table])
            except Exception as exc:  # housekeeping is retried at the next round; the stream goes on
                log.warning("stream %s: housekeeping of %s failed: %s", self.stream.name, table,
                            str(exc).splitlines()[0][:300])
        return done
