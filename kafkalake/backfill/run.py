"""A backfill run (Spark): read the range once, decode, quarantine, write + verify + publish."""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kafkalake._files import write_json_atomic
from kafkalake.backfill.plan import BackfillPlan, plan_backfill
from kafkalake.backfill.request import BackfillError, BackfillRequest, kafka_fingerprint
from kafkalake.config import Settings
from kafkalake.lake.landing import fingerprint, landing_hours
from kafkalake.lake.manifest import read_manifest
from kafkalake.lake.tables import Hour, TablePaths
from kafkalake.spark.session import kafka_reader
from kafkalake.stream.config import StreamConfig

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

    from kafkalake.lake.publish import HourResult


def read_kafka(spark: SparkSession, settings: Settings, topics: list[str], *, plan: BackfillPlan,
               start: datetime, end: datetime) -> DataFrame:
    """The Kafka source rows of the plan's range, as a batch DataFrame (the stream's columns)."""
    reader = (
        kafka_reader(spark.read, settings.bootstrap_servers, topics)
        .option("failOnDataLoss", "true")
    )
    if plan.mode == "offsets":
        reader = (reader.option("startingOffsets", json.dumps(plan.starting_offsets))
                  .option("endingOffsets", json.dumps(plan.ending_offsets)))
    else:
        # a partition with no record at/after start reads nothing (latest..latest), not an error
        reader = (reader.option("startingTimestamp", str(int(start.timestamp() * 1000)))
                  .option("endingTimestamp", str(int(end.timestamp() * 1000)))
                  .option("startingOffsetsByTimestampStrategy", "latest"))
    return reader.load()


def quarantine_root(settings: Settings, paths: TablePaths) -> Path:
    return settings.lake_root / "quarantine" / paths.fmt / paths.name


#: what a quarantine row keeps: where it came from, why, and the bytes
QUARANTINE_FIELDS = ("topic", "partition", "offset", "timestamp", "schema_id", "reason", "raw_key", "raw_value",
                     "dt", "hour")


class _QuarantineLedger:
    """Quarantine folders a run writes, recorded in ``_journal/<run>.quarantine`` before the
    first byte, so a run killed before its publish is rolled back by the next backfill."""

    def __init__(self, settings: Settings, paths: TablePaths, run_id: str) -> None:
        self.root = settings.lake_root
        self.paths = paths
        self.marker = paths.journal_dir / f"{run_id}.quarantine"
        self.dirs: list[str] = []

    def add(self, rel: str) -> Path:
        self.dirs.append(rel)
        self.paths.journal_dir.mkdir(parents=True, exist_ok=True)
        write_json_atomic(self.marker, self.dirs)
        return self.root / rel

    def roll_back(self) -> None:
        for rel in self.dirs:
            shutil.rmtree(self.root / rel, ignore_errors=True)
        self.marker.unlink(missing_ok=True)

    def done(self) -> None:
        self.marker.unlink(missing_ok=True)

    @staticmethod
    def recover(settings: Settings, paths: TablePaths) -> list[str]:
        """Delete quarantine folders of dead runs the manifest does not reference."""
        notes = []
        referenced = {e["quarantine"]["dir"] for e in read_manifest(paths)["hours"].values() if e.get("quarantine")}
        for marker in sorted(paths.journal_dir.glob("*.quarantine")) if paths.journal_dir.is_dir() else []:
            dirs = json.loads(marker.read_text() or "[]")
            dropped = [d for d in dirs if d not in referenced]
            for rel in dropped:
                shutil.rmtree(settings.lake_root / rel, ignore_errors=True)
            notes.append(f"backfill run {marker.stem}: {len(dropped)} unpublished quarantine folder(s) removed")
            marker.unlink()
        return notes


def _hour_key_column():  # -> Column
    from pyspark.sql import functions as F

    return F.format_string("%sT%02d", F.col("dt"), F.col("hour"))


def _count_by_hour_zone(df: DataFrame) -> dict[tuple[str, str], int]:
    rows = df.groupBy(_hour_key_column().alias("key"), "zone").count().collect()
    return {(r["key"], r["zone"]): int(r["count"]) for r in rows}


def _landing_quarantine_counts(spark: SparkSession, paths: TablePaths, schema: Any, hours: list[str]) -> dict[str, int]:
    """Rows of the landing sink's quarantine zone per hour (the stream's bad records)."""
    from pyspark.sql import functions as F

    from kafkalake.stream.decode import QUARANTINE

    present = {h.key for h in landing_hours(paths, zone=QUARANTINE)} & set(hours)
    if not present:
        return {}
    reader = spark.read.schema(schema).format(paths.fmt)
    if paths.fmt == "avro":
        reader = reader.option("ignoreExtension", "true")
    df = (reader.load(str(paths.landing)).where(F.col("zone") == QUARANTINE)
          .where(_hour_key_column().isin(sorted(present))))
    return {key: n for (key, _zone), n in _count_by_hour_zone(df).items()}


def run_backfill(
    settings: Settings,
    request: BackfillRequest,
    *,
    dry_run: bool = False,
    spark_factory: Callable[[], SparkSession] | None = None,
    progress: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Plan, and unless ``dry_run`` replace, the requested hours. Returns the report (JSON-able).

    A dry run needs no Spark and takes no lock. A real run plans under the table's lock (what
    is true while it holds it), after rolling back what a dead run left behind.
    """
    started = time.monotonic()

    def planned(plan: BackfillPlan) -> dict[str, Any]:
        for line in plan.describe():
            progress(line)
        return {
            "table": plan.table, "format": plan.fmt, "source": plan.source, "mode": plan.mode, "dry_run": dry_run,
            "start": plan.start, "end": plan.end, "closed_before": plan.closed_before, "topics": plan.topics,
            "plan": [asdict(h) for h in plan.hours], "hours": [],
            "starting_offsets": plan.starting_offsets, "ending_offsets": plan.ending_offsets,
        }

    if dry_run:
        report = planned(plan_backfill(settings, request))
        report["seconds"] = round(time.monotonic() - started, 3)
        return report
    from kafkalake.lake.publish import lock_table, recover
    from kafkalake.lake.tables import resolve_table

    if spark_factory is None:
        raise BackfillError("a backfill needs a Spark session factory")
    stream, paths = resolve_table(settings, request.table)
    lock = lock_table(paths)
    try:
        recovered = _QuarantineLedger.recover(settings, paths) + recover(paths)
        for note in recovered:
            progress(f"  recovered: {note}")
        plan = plan_backfill(settings, request)
        report = {**planned(plan), "recovered": recovered}
        report.update(_replace_hours(spark_factory(), settings, stream, paths, request, plan, progress))
    finally:
        lock.close()
    report["seconds"] = round(time.monotonic() - started, 3)
    return report


def _replace_hours(spark: SparkSession, settings: Settings, stream: StreamConfig, paths: TablePaths,
                   request: BackfillRequest, plan: BackfillPlan, progress: Callable[[str], None]) -> dict[str, Any]:
    """Read, decode, quarantine, then write + verify + publish through the Compactor.

    An hour whose records are all undecodable (quarantine only) publishes no lake version:
    its table rows are none either way, and Spark cannot observe an empty sorted write
    (see the module notes). Its quarantine folder is kept like the others.
    """
    from pyspark import StorageLevel
    from pyspark.sql import functions as F

    from kafkalake.lake.publish import Compactor, HourResult
    from kafkalake.lake.read import read_landing_hours
    from kafkalake.schema.registry import Registry
    from kafkalake.stream.decode import LANDING, QUARANTINE, decode, decode_plan

    registry = Registry(settings.schemas_dir)
    compactor = Compactor(spark, stream, paths, registry.latest(stream.subject).schema_json, progress=progress)
    ledger = _QuarantineLedger(settings, paths, compactor.run_id)
    out: dict[str, Any] = {"run_id": compactor.run_id, "records_read": None, "records_outside_hours": 0}
    todo = plan.to_write
    decoded = None
    items, extra, rows_of, quarantine_only = [], {}, {}, {}
    try:
        landing = landing_hours(paths)
        if plan.source == "kafka":
            raw = read_kafka(spark, settings, plan.topics, plan=plan, start=request.start, end=request.end)
            decoded = decode(raw, decode_plan(registry, stream.subject)).persist(StorageLevel.MEMORY_AND_DISK)
            rows_of, quarantined = _count_kafka_hours(decoded, plan, out)
        else:
            quarantined = _landing_quarantine_counts(spark, paths, compactor.schema, [h.hour for h in todo])
        for h in todo:
            hour = Hour.parse(h.hour)
            q = quarantined.get(h.hour, 0)
            info: dict[str, Any] = {"kafka_offsets": h.kafka_offsets, "offsets_in_range": h.offsets_in_range,
                                    "kafka_complete": h.kafka_complete, "backfill_source": plan.source,
                                    "landing_fingerprint": fingerprint(landing.get(hour, {}))}
            if plan.source == "kafka":
                assert decoded is not None
                in_hour = decoded.where((F.col("dt") == hour.dt) & (F.col("hour") == hour.hour))
                info["quarantine"] = None
                if q:
                    rel = f"quarantine/{paths.fmt}/{paths.name}/{hour.folder}/run={compactor.run_id}"
                    folder = ledger.add(rel)
                    (in_hour.where(F.col("zone") == QUARANTINE).select(*QUARANTINE_FIELDS).repartition(1)
                     .write.mode("errorifexists").parquet(str(folder)))
                    info["quarantine"] = {"dir": rel, "rows": q}
                progress(f"  {h.hour}: {rows_of[h.hour] + q:,} records from Kafka ({q:,} quarantined); "
                         f"offsets in range: {h.offsets_in_range:,}")
                if rows_of[h.hour] == 0:
                    quarantine_only[h.hour] = {"hour": h.hour, "action": "quarantine only", "rows": 0,
                                               "output_files": 0, "dir": "", "checksum": "", "quarantined": q, **info}
                    continue
                source = in_hour.where(F.col("zone") == LANDING)
                source_fp = kafka_fingerprint(h.kafka_offsets)
                partitions = sum(1 for first, end in h.kafka_offsets.values() if end > first)
                result = HourResult(h.hour, partitions, 0, [])
            else:
                source = read_landing_hours(spark, paths, compactor.schema, hours=[hour])
                source_fp = info["landing_fingerprint"]
                files = landing.get(hour, {})
                result = HourResult(h.hour, len(files), sum(files.values()), sorted(files.values()))
            extra[h.hour] = {**info, "quarantined": q}
            items.append((hour, h.outputs, source_fp, source, result))
        results = compactor.run(items, origin="backfill", extra=extra) if items else []
    except BaseException:
        ledger.roll_back()
        raise
    finally:
        if decoded is not None:
            decoded.unpersist()
    ledger.done()  # committed: the manifest names the published hours' folders
    keep = {key: (info.get("quarantine") or {}).get("dir") for key, info in quarantine_only.items()}
    keep.update({r.hour: (extra[r.hour].get("quarantine") or {}).get("dir") for r in results})
    out["cleanup"] = compactor.cleanup() if results else {}
    out["cleanup"]["quarantine_folders_removed"] = _drop_superseded_quarantine(settings, paths, keep)
    return _with_hours(out, plan, results, extra, quarantine_only)


def _count_kafka_hours(decoded: DataFrame, plan: BackfillPlan,
                       out: dict[str, Any]) -> tuple[dict[str, int], dict[str, int]]:
    """Rows and quarantined records per hour to write: the one Kafka read (everything after reads
    the cache). Refuses an hour that would be replaced with nothing while the lake has rows."""
    from kafkalake.stream.decode import LANDING, QUARANTINE

    counts = _count_by_hour_zone(decoded)
    wanted = {h.hour for h in plan.hours}
    out["records_read"] = sum(counts.values())
    out["records_outside_hours"] = sum(n for (key, _z), n in counts.items() if key not in wanted)
    rows_of = {h.hour: counts.get((h.hour, LANDING), 0) for h in plan.to_write}
    quarantined = {h.hour: counts.get((h.hour, QUARANTINE), 0) for h in plan.to_write}
    for h in plan.to_write:
        if rows_of[h.hour] == 0 and h.lake_rows:
            raise BackfillError(f"hour {h.hour}: every one of its {quarantined[h.hour]:,} records in Kafka is "
                                f"undecodable now, but the lake has {h.lake_rows:,} rows; refusing to replace "
                                f"them with nothing (check the schema registry)")
    return rows_of, quarantined


def _with_hours(out: dict[str, Any], plan: BackfillPlan, results: list[HourResult], extra: dict[str, dict[str, Any]],
                quarantine_only: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The report's per-hour list (skipped, quarantine only, replaced) and its totals."""
    out["hours"] = [{"hour": h.hour, "action": "skip", "why": h.why, "rows": 0, "quarantined": 0,
                     "offsets_in_range": h.offsets_in_range, "kafka_offsets": h.kafka_offsets,
                     "kafka_complete": h.kafka_complete} for h in plan.hours if h.action == "skip"]
    out["hours"] += list(quarantine_only.values())
    actions = {h.hour: h.action for h in plan.hours}
    out["hours"] += [{"action": actions[r.hour], **asdict(r), **extra[r.hour]} for r in results]
    out["hours"].sort(key=lambda h: h["hour"])
    out["totals"] = {
        "hours_replaced": len(results), "hours_quarantine_only": len(quarantine_only),
        "rows": sum(r.rows for r in results), "quarantined": sum(h["quarantined"] for h in out["hours"]),
        "offsets_in_range": sum(h["offsets_in_range"] for h in out["hours"]),
    }
    return out


def _drop_superseded_quarantine(settings: Settings, paths: TablePaths, keep: Mapping[str, str | None]) -> int:
    """After a run: the other quarantine run folders of its hours (``keep``: hour -> this run's folder)."""
    removed = 0
    for key, kept in keep.items():
        folder = quarantine_root(settings, paths) / Hour.parse(key).folder
        for run_dir in sorted(folder.glob("run=*")) if folder.is_dir() else []:
            if str(run_dir.relative_to(settings.lake_root)) != kept:
                shutil.rmtree(run_dir, ignore_errors=True)
                removed += 1
    return removed
