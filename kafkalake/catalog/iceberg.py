"""Iceberg tables from a Spark driver: create, load, commit markers, housekeeping.

Table metadata is written from the JVM (Iceberg's Java API through py4j): format version 3,
whose column defaults (``initial-default``) let files written before a field existed read it
with its default, is written by Java only (pyiceberg 0.12 reads v3 but does not write it).

docs/architecture.md: Exactly once into the lake. Every commit a writer makes carries its
identity in the snapshot summary (``kafkalake.writer``, ``kafkalake.batch``); a writer that
restarts asks the table for the last batch it committed and skips what is already there.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from kafkalake.catalog.config import CatalogConfig, CatalogError
from kafkalake.errors import ExitCode

if TYPE_CHECKING:
    from pyspark.sql import SparkSession
    from pyspark.sql.types import StructType

log = logging.getLogger(__name__)
T = TypeVar("T")

WRITER_PROPERTY = "kafkalake.writer"
BATCH_PROPERTY = "kafkalake.batch"
#: partition column of every stream table: hidden partitioning by the hour of the Kafka timestamp
PARTITION_SOURCE = "timestamp"

#: properties of every table kafkalake creates
TABLE_PROPERTIES: dict[str, str] = {
    "format-version": "3",
    # old metadata.json files go as new ones are written (a stream commits every trigger)
    "write.metadata.delete-after-commit.enabled": "true",
    "write.metadata.previous-versions-max": "20",
    # a stream, compaction and a backfill commit to one table side by side: optimistic retries
    "commit.retry.num-retries": "20",
    "commit.retry.min-wait-ms": "50",
    "commit.retry.max-wait-ms": "5000",
    # row-level DELETE/UPDATE/MERGE rewrite files (no delete files, which pyiceberg would have to
    # apply) and, beside a live stream, take the rows as of their start: rows appended while
    # they run are newer and not a conflict
    "write.delete.mode": "copy-on-write",
    "write.update.mode": "copy-on-write",
    "write.merge.mode": "copy-on-write",
    "write.delete.isolation-level": "snapshot",
    "write.update.isolation-level": "snapshot",
    "write.merge.isolation-level": "snapshot",
    # a micro-batch touches one or two hours: write them side by side, no shuffle, no sort
    "write.distribution-mode": "none",
    "write.spark.fanout.enabled": "true",
}


#: how :class:`CatalogUnavailable`'s message starts (a failed stream query carries it as text)
CATALOG_UNAVAILABLE = "the Iceberg catalog did not answer"


class CatalogUnavailable(CatalogError):
    """The catalog did not answer (locked, down) through every retry; nothing was half-committed."""

    exit_code = ExitCode.SERVICE


def jvm_catalog(spark: SparkSession, config: CatalogConfig) -> Any:
    """The Java ``org.apache.iceberg.catalog.Catalog`` behind the Spark catalog ``config.name``."""
    try:
        return spark._jvm.org.apache.iceberg.spark.Spark3Util.loadIcebergCatalog(spark._jsparkSession, config.name)
    except Exception as exc:
        raise CatalogError(
            f"Spark has no Iceberg catalog {config.name!r} ({error_line(exc)}): the job must run with "
            "kafkalake's Spark conf (kafkalake.spark.submit.job_conf) and the iceberg-spark-runtime jar (`make jars`)"
        ) from None


def table_identifier(spark: SparkSession, config: CatalogConfig, table: str) -> Any:
    return spark._jvm.org.apache.iceberg.catalog.TableIdentifier.parse(f"{config.namespace}.{table}")


def load_table(spark: SparkSession, config: CatalogConfig, table: str) -> Any:
    """The Java ``Table``; a missing table is one line naming it."""
    catalog = jvm_catalog(spark, config)
    ident = table_identifier(spark, config, table)
    if not with_retry(lambda: catalog.tableExists(ident), f"look up {config.identifier(table)}"):
        raise CatalogError(
            f"no table {config.identifier(table)} in the catalog: it is created when its stream first starts "
            "(`kafkalake stream run NAME`)"
        )
    return with_retry(lambda: catalog.loadTable(ident), f"load {config.identifier(table)}")


@dataclass(frozen=True)
class TableSpec:
    """What a table is made of: its columns (the rows Spark writes), file format, docs, defaults."""

    name: str
    columns: StructType
    file_format: str = "parquet"
    docs: Mapping[str, str] = field(default_factory=dict)
    defaults: Mapping[str, Any] = field(default_factory=dict)


def iceberg_schema_json(spark: SparkSession, spec: TableSpec) -> str:
    """Iceberg's schema JSON for ``spec``: Spark's types converted by Iceberg, top-level docs
    and defaults added (``initial-default`` = ``write-default``: v3 column defaults)."""
    jvm = spark._jvm
    jtype = spark._jsparkSession.parseDataType(spec.columns.json())
    schema = jvm.org.apache.iceberg.spark.SparkSchemaUtil.convert(jtype)
    doc = json.loads(jvm.org.apache.iceberg.SchemaParser.toJson(schema))
    for column in doc["fields"]:
        if spec.docs.get(column["name"]):
            column["doc"] = spec.docs[column["name"]]
        if column["name"] in spec.defaults and spec.defaults[column["name"]] is not None:
            column["initial-default"] = column["write-default"] = spec.defaults[column["name"]]
    return json.dumps(doc)


def ensure_table(spark: SparkSession, config: CatalogConfig, spec: TableSpec) -> tuple[Any, bool]:
    """Load ``spec.name``, creating it (and the namespace) when missing. Returns (table, created)."""
    jvm = spark._jvm
    catalog = jvm_catalog(spark, config)
    ident = table_identifier(spark, config, spec.name)

    def create() -> tuple[Any, bool]:
        if catalog.tableExists(ident):
            return catalog.loadTable(ident), False
        spark.sql(f"CREATE NAMESPACE IF NOT EXISTS {config.name}.{config.namespace}")
        schema = jvm.org.apache.iceberg.SchemaParser.fromJson(iceberg_schema_json(spark, spec))
        partition = jvm.org.apache.iceberg.PartitionSpec.builderFor(schema).hour(PARTITION_SOURCE).build()
        properties = jvm.java.util.HashMap()
        for key, value in {**TABLE_PROPERTIES, "write.format.default": spec.file_format}.items():
            properties.put(key, value)
        try:
            return catalog.createTable(ident, schema, partition, properties), True
        except Exception as exc:
            if "AlreadyExists" in str(exc):
                return catalog.loadTable(ident), False
            raise

    table, created = with_retry(create, f"create {config.identifier(spec.name)}")
    if created:
        log.warning("created Iceberg table %s (%s files)", config.identifier(spec.name), spec.file_format)
    return table, created


def last_committed_batch(table: Any, writer: str, *, max_depth: int = 10_000) -> int | None:
    """The highest ``kafkalake.batch`` ``writer`` committed to ``table``'s main branch, from its
    snapshot history (newest first; other writers' commits in between are passed over)."""
    table.refresh()
    tagged = _tagged_batch(table, writer)
    snapshot = table.currentSnapshot()
    depth = 0
    while snapshot is not None and depth < max_depth:
        summary = snapshot.summary()
        if summary.get(WRITER_PROPERTY) == writer and summary.get(BATCH_PROPERTY) is not None:
            return max(int(summary.get(BATCH_PROPERTY)), tagged if tagged is not None else -1)
        parent = snapshot.parentId()
        snapshot = table.snapshot(parent) if parent is not None else None
        depth += 1
    return tagged


def _tagged_batch(table: Any, writer: str) -> int | None:
    """The batch of the snapshot tagged for ``writer`` (kept by expiry, see :func:`housekeep`)."""
    ref = table.refs().get(marker_tag(writer))
    if ref is None:
        return None
    batch = table.snapshot(ref.snapshotId()).summary().get(BATCH_PROPERTY)
    return int(batch) if batch is not None else None


def marker_tag(writer: str) -> str:
    return f"kafkalake-last-{writer}"


def commit_options(writer: str, batch: int | str) -> dict[str, str]:
    """Write options that stamp a commit with its writer and batch."""
    return {f"snapshot-property.{WRITER_PROPERTY}": writer, f"snapshot-property.{BATCH_PROPERTY}": str(batch)}


@dataclass(frozen=True)
class Housekeeping:
    """Snapshot housekeeping of one table (streams.yaml ``housekeeping:``)."""

    #: run after this many commits of the stream
    every_commits: int = 10
    #: the newest snapshots kept (time travel reaches this many commits back) ...
    retain_last: int = 50
    #: ... and also every snapshot younger than this (0: by count only). Each kept snapshot
    #: adds ~1 KB to every metadata.json the stream writes, so at a 5 s trigger an hour kept
    #: is 720 snapshots, ~0.8 MB rewritten per commit
    keep_minutes: float = 0.0
    #: rewrite the manifests when the current snapshot has more than this many
    max_manifests: int = 50


def housekeep(spark: SparkSession, table: Any, writer: str, policy: Housekeeping) -> dict[str, Any]:
    """Tag the writer's newest commit, expire old snapshots (their unreferenced files go with
    them) and merge small manifests: metadata size and commit time stay flat for days."""
    jvm = spark._jvm
    started = time.monotonic()
    table.refresh()
    newest = _newest_of(table, writer)
    if newest is not None:
        tags = table.manageSnapshots()
        if table.refs().containsKey(marker_tag(writer)):
            tags.replaceTag(marker_tag(writer), newest).commit()
        else:
            tags.createTag(marker_tag(writer), newest).commit()
    before = _snapshot_count(table)
    cutoff = int((time.time() - policy.keep_minutes * 60) * 1000)
    floor = rewrite_floor(table)
    if floor is not None and floor < cutoff:
        cutoff = floor
    table.expireSnapshots().expireOlderThan(cutoff).retainLast(policy.retain_last).commit()
    table.refresh()
    manifests = table.currentSnapshot().allManifests(table.io()).size() if table.currentSnapshot() else 0
    rewritten = 0
    if manifests > policy.max_manifests:
        result = jvm.org.apache.iceberg.spark.actions.SparkActions.get(spark._jsparkSession).rewriteManifests(
            table).execute()
        rewritten = sum(1 for _ in result.rewrittenManifests())
    table.refresh()
    return {"expired": before - _snapshot_count(table), "manifests": manifests, "manifests_rewritten": rewritten,
            "seconds": round(time.monotonic() - started, 3)}


#: refs of rewrites in flight (``kafkalake_<origin>_...`` branches)
REWRITE_REF_PREFIX = "kafkalake_"
#: a rewrite ref older than this is one a killed run left (the next run drops it): it no
#: longer holds back snapshot expiry
REWRITE_PIN_HOURS = 6.0


def rewrite_floor(table: Any, *, now_ms: int | None = None) -> int | None:
    """The commit time of the oldest snapshot a rewrite in flight forked from, or None.

    A rewrite (compaction, backfill) publishes by cherry-picking its branch onto main, and
    Iceberg checks that every main snapshot since the fork point exists: it looks for files
    added to the rewritten hours meanwhile. Expiring those snapshots under a live stream
    (``retain_last`` of a 1 s trigger is under a minute of history) would make a long rewrite's
    publish fail, so housekeeping keeps every snapshot younger than the fork points."""
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    oldest_allowed = now_ms - int(REWRITE_PIN_HOURS * 3600 * 1000)
    floor = None
    refs = table.refs()
    for name in list(refs.keySet()):
        if not str(name).startswith(REWRITE_REF_PREFIX):
            continue
        snapshot = table.snapshot(refs.get(name).snapshotId())
        # a branch's head and its fork point (the branch keeps both)
        for _ in range(2):
            if snapshot is None:
                break
            stamp = int(snapshot.timestampMillis())
            if stamp >= oldest_allowed and (floor is None or stamp < floor):
                floor = stamp
            parent = snapshot.parentId()
            snapshot = table.snapshot(parent) if parent is not None else None
    return floor


def _newest_of(table: Any, writer: str) -> int | None:
    snapshot = table.currentSnapshot()
    while snapshot is not None:
        if snapshot.summary().get(WRITER_PROPERTY) == writer:
            return snapshot.snapshotId()
        parent = snapshot.parentId()
        snapshot = table.snapshot(parent) if parent is not None else None
    return None


def _snapshot_count(table: Any) -> int:
    return sum(1 for _ in table.snapshots())


def remove_orphan_files(spark: SparkSession, table: Any, *, older_than_minutes: float) -> int:
    """Delete files under the table no snapshot references, older than the grace (files of a
    write in progress elsewhere are younger): what a writer killed before its commit left."""
    cutoff = int((time.time() - older_than_minutes * 60) * 1000)
    actions = spark._jvm.org.apache.iceberg.spark.actions.SparkActions.get(spark._jsparkSession)
    for attempt in range(ORPHAN_ATTEMPTS):
        try:
            result = actions.deleteOrphanFiles(table).olderThan(cutoff).execute()
            return sum(1 for _ in result.orphanFileLocations())
        except Exception as exc:
            # a stream's housekeeping expired a snapshot (and deleted its manifest list) while
            # the action listed the reachable files: list again from fresh metadata
            if "NotFoundException" not in str(exc) or attempt == ORPHAN_ATTEMPTS - 1:
                raise
            log.info("orphan file removal raced a snapshot expiry (%s); listing again", error_line(exc))
            table.refresh()
    raise AssertionError("unreachable")


ORPHAN_ATTEMPTS = 3


#: messages of catalog failures worth a retry (a SQLite writer holding the lock, a database
#: restarting); anything else fails at once
TRANSIENT = ("database is locked", "SQLITE_BUSY", "Connection refused", "connection attempt failed",
             "Failed to get connection", "Cannot create PoolableConnectionFactory", "SQLITE_CANTOPEN",
             "The connection attempt failed", "Connection reset", "CommitFailedException")
RETRY_DELAYS = (0.5, 1.0, 2.0, 4.0, 8.0, 15.0)


def is_transient(exc: BaseException) -> bool:
    text = str(exc)
    return any(marker in text for marker in TRANSIENT)


def with_retry(action: Callable[[], T], what: str, *, delays: tuple[float, ...] = RETRY_DELAYS) -> T:
    """``action()``, retried with backoff while the catalog is locked or unreachable; then one
    loud line. Only for actions that are safe to repeat (reads, creates that check first, and
    writes whose caller re-checks its commit marker)."""
    for attempt, delay in enumerate((*delays, None)):
        try:
            return action()
        except Exception as exc:
            if not is_transient(exc):
                raise
            if delay is None:
                raise CatalogUnavailable(
                    f"{CATALOG_UNAVAILABLE} to {what} after {attempt + 1} attempts "
                    f"({error_line(exc)}): check that its database is up and not locked, then run again"
                ) from None
            log.warning("catalog busy during %s (%s); retrying in %.1f s", what, error_line(exc), delay)
            time.sleep(delay)
    raise AssertionError("unreachable")


def error_line(exc: BaseException) -> str:
    """The line of a (py4j) exception that says what failed, for a one-line error."""
    text = str(exc).strip()
    for line in text.splitlines():
        if "Exception:" in line or "Error:" in line:
            return line.strip().lstrip(": ")[:300]  # py4j starts the Java line with ": "
    return text.splitlines()[0][:300] if text else type(exc).__name__
