"""A backfill run (Spark): read the range once, decode, check against Kafka, then publish per table.

docs/architecture.md: One decode path; Exactly once into the lake; Rewrites are verified, then
committed once; Nothing is silently dropped. The steps are in :mod:`kafkalake.backfill.request`.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from kafkalake.backfill.plan import BackfillPlan, plan_backfill
from kafkalake.backfill.request import (
    BackfillError,
    BackfillRequest,
    BackfillVerificationError,
    HourCount,
    count_problems,
)
from kafkalake.catalog.config import CatalogConfig, catalog_config
from kafkalake.config import Settings
from kafkalake.lake.tables import Hour
from kafkalake.spark.session import kafka_reader

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

ORIGIN = "backfill"
#: snapshot summary property naming the backfill run of a commit
RUN_PROPERTY = "kafkalake.backfill.run"


def read_kafka(spark: SparkSession, settings: Settings, plan: BackfillPlan, request: BackfillRequest) -> DataFrame:
    """The Kafka source rows of the plan's range, as a batch DataFrame (the stream's columns)."""
    reader = (
        kafka_reader(spark.read, settings.bootstrap_servers, plan.topics)
        .option("failOnDataLoss", "true")
        .option("includeHeaders", "true")
    )
    if plan.mode == "offsets":
        reader = (reader.option("startingOffsets", json.dumps(plan.starting_offsets))
                  .option("endingOffsets", json.dumps(plan.ending_offsets)))
    else:
        # a partition with no record at/after start reads nothing (latest..latest), not an error
        reader = (reader.option("startingTimestamp", str(int(request.start.timestamp() * 1000)))
                  .option("endingTimestamp", str(int(request.end.timestamp() * 1000)))
                  .option("startingOffsetsByTimestampStrategy", "latest"))
    return reader.load()


def run_backfill(
    settings: Settings,
    request: BackfillRequest,
    *,
    dry_run: bool = False,
    spark_factory: Callable[[], SparkSession] | None = None,
    progress: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Plan, and unless ``dry_run`` replace, the requested hours. Returns the report (JSON-able).

    A dry run needs no Spark (Kafka's time index and the tables' metadata).
    """
    started = time.monotonic()
    plan = plan_backfill(settings, request)
    for line in plan.describe():
        progress(line)
    report: dict[str, Any] = {
        "table": plan.table, "quarantine_table": plan.quarantine_table, "stream": plan.stream, "format": plan.fmt,
        "mode": plan.mode, "dry_run": dry_run, "start": plan.start, "end": plan.end,
        "closed_before": plan.closed_before, "topics": plan.topics, "plan": [asdict(h) for h in plan.hours],
        "hours": [], "starting_offsets": plan.starting_offsets, "ending_offsets": plan.ending_offsets,
    }
    if not dry_run:
        if spark_factory is None:
            raise BackfillError("a backfill that is not a dry run needs Spark (spark_factory)")
        report.update(_replace(spark_factory(), settings, request, plan, progress))
    report["seconds"] = round(time.monotonic() - started, 3)
    return report


def _replace(spark: SparkSession, settings: Settings, request: BackfillRequest, plan: BackfillPlan,
             progress: Callable[[str], None]) -> dict[str, Any]:
    """Read + decode once, check every hour against Kafka, then the table, then its quarantine."""
    from pyspark import StorageLevel

    from kafkalake.lake.rewrite import drop_stale_branches, hours_filter
    from kafkalake.schema.registry import Registry
    from kafkalake.stream.config import get_stream
    from kafkalake.stream.decode import decode, decode_plan, quarantine_rows, table_rows

    config = catalog_config(settings)
    run_id = f"{time.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:6]}"
    out: dict[str, Any] = {"run_id": run_id, "tables": {}}
    for table in (plan.table, plan.quarantine_table):
        for name in drop_stale_branches(spark, config, table, ORIGIN):
            progress(f"  {table}: dropped branch {name} of an interrupted backfill")
    todo = [Hour.parse(h.hour) for h in plan.to_write]
    if not todo:
        progress("  no hour to replace: nothing in Kafka or in the tables for these hours")
        return {**out, **_hours(plan, {}, {})}
    decode_with = decode_plan(Registry(settings.schemas_dir), get_stream(settings, plan.stream).subject)
    decoded = decode(read_kafka(spark, settings, plan, request), decode_with).persist(StorageLevel.MEMORY_AND_DISK)
    timer = time.monotonic()
    seconds = out["seconds_by_step"] = {}
    try:
        counts, out["records_read"] = _count(decoded, todo)
        seconds["read_decode_count"] = round(time.monotonic() - timer, 3)
        out["records_outside_hours"] = out["records_read"] - sum(c.records for c in counts.values())
        problems = count_problems({h.hour: h.offsets_in_range for h in plan.to_write}, counts)
        if problems:
            raise BackfillVerificationError(
                f"{plan.table}: what Kafka returned does not add up with its offsets in {len(problems)} hour(s), "
                f"e.g. {problems[0]}; nothing was published")
        in_hours = decoded.where(hours_filter(todo))
        targets = [(plan.table, table_rows(in_hours, decode_with), False),
                   (plan.quarantine_table, quarantine_rows(in_hours), True)]
        changes = [_changes(spark, config, table, rows, todo, quarantine=q) for table, rows, q in targets]
        seconds["compare"] = round(time.monotonic() - timer - seconds["read_decode_count"], 3)
        for (table, rows, _q), change in zip(targets, changes, strict=True):
            out["tables"][table] = _publish(spark, config, table, rows, change, run_id, progress)
        seconds["publish"] = round(time.monotonic() - timer - seconds["read_decode_count"] - seconds["compare"], 3)
    finally:
        decoded.unpersist()
    return {**out, **_hours(plan, counts, {t: c["expected"] for t, c in zip(
        (plan.table, plan.quarantine_table), changes, strict=True)})}


def _count(decoded: DataFrame, hours: list[Hour]) -> tuple[dict[str, HourCount], int]:
    """Per hour: rows, quarantined, distinct coordinates (one pass over the cache); and all records read."""
    from pyspark.sql import functions as F

    hour = F.date_trunc("hour", F.col("timestamp")).alias("_hour")  # as checksums_by_hour groups
    wanted = {h.key for h in hours}
    counts, total = {}, 0
    for row in decoded.groupBy(hour).agg(
        F.count(F.lit(1)).alias("n"), F.count(F.col("reason")).alias("bad"),
        F.count_distinct("topic", "partition", "offset").alias("coordinates"),
    ).collect():
        total += int(row["n"])
        key = Hour.of(row["_hour"]).key
        if key in wanted:
            counts[key] = HourCount(int(row["n"]) - int(row["bad"]), int(row["bad"]), int(row["coordinates"]))
    return counts, total


def _changes(spark: SparkSession, config: CatalogConfig, table: str, rows: DataFrame, hours: list[Hour], *,
             quarantine: bool) -> dict[str, Any]:
    """What publishing ``rows`` would change in ``table``: hours whose checksum differs from the
    table's at its current snapshot, and hours to empty (quarantine only; refused for a table)."""
    from kafkalake.lake.rewrite import checksums_by_hour, hours_filter

    ident = config.identifier(table)
    base = spark.sql(f"SELECT snapshot_id FROM {ident}.refs WHERE name = 'main'").first()
    base_id = int(base[0]) if base is not None else None
    current_df = spark.table(ident) if base_id is None else spark.sql(f"SELECT * FROM {ident} VERSION AS OF {base_id}")
    current = checksums_by_hour(current_df.where(hours_filter(hours)).select(*rows.columns), rows.columns)
    expected = checksums_by_hour(rows, rows.columns)
    emptied = sorted(h for h in hours if h not in expected and h in current)
    if emptied and not quarantine:
        raise BackfillError(f"hour {emptied[0].key}: none of its records in Kafka decodes now, but {ident} has "
                            f"{current[emptied[0]][0]:,} rows for it; refusing to replace them with nothing "
                            f"(check the schema registry); nothing was published")
    changed = sorted(h for h, want in expected.items() if current.get(h) != want)
    return {"base": base_id, "expected": expected, "changed": changed, "emptied": emptied}


def _publish(spark: SparkSession, config: CatalogConfig, table: str, rows: DataFrame, change: dict[str, Any],
             run_id: str, progress: Callable[[str], None]) -> dict[str, Any]:
    """One verified commit replacing the changed hours (none when nothing changed), then the
    deletion of hours that have no rows any more (docs/architecture.md: Nothing is silently dropped)."""
    from kafkalake.lake.rewrite import VerifyError, hours_filter, replace_hours

    ident = config.identifier(table)
    changed, emptied = change["changed"], change["emptied"]
    result: dict[str, Any] = {"hours_replaced": [h.key for h in changed], "hours_emptied": [h.key for h in emptied],
                              "published_snapshot": None, "base_snapshot": change["base"], "seconds": {}}
    if changed:
        try:
            rewrite = replace_hours(spark, config, table, rows.where(hours_filter(changed)),
                                    {h: change["expected"][h] for h in changed}, origin=ORIGIN,
                                    base_snapshot=change["base"], properties={RUN_PROPERTY: run_id},
                                    progress=progress)
        except VerifyError as exc:  # a backfill's verification failure exits as one (10), not as compaction's
            raise BackfillVerificationError(str(exc)) from None
        result["published_snapshot"], result["seconds"] = rewrite.published_snapshot, rewrite.seconds
    if emptied:
        spark.sql(f"DELETE FROM {ident} WHERE {hours_filter(emptied)}")
        left = spark.read.table(ident).where(hours_filter(emptied)).count()
        if left:
            raise BackfillVerificationError(f"{ident}: {left:,} rows are left in hour(s) "
                                            f"{', '.join(h.key for h in emptied)} after deleting them")
        progress(f"{ident}: deleted the rows of {len(emptied)} hour(s) that have none any more")
    if not changed and not emptied:
        progress(f"{ident}: every hour already holds exactly these rows; no commit")
    return result


def _hours(plan: BackfillPlan, counts: dict[str, HourCount],
           expected: dict[str, dict[Hour, tuple[int, str]]]) -> dict[str, Any]:
    """The report's per-hour list and its totals."""
    table, quarantine = expected.get(plan.table, {}), expected.get(plan.quarantine_table, {})
    hours = []
    for h in plan.hours:
        key, hour = h.hour, Hour.parse(h.hour)
        entry = {"hour": key, "action": h.action, "why": h.why, "offsets_in_range": h.offsets_in_range,
                 "kafka_offsets": h.kafka_offsets, "rows": 0, "quarantined": 0, "checksum": "",
                 "quarantine_checksum": ""}
        if key in counts:
            entry.update(rows=counts[key].rows, quarantined=counts[key].quarantined,
                         checksum=table.get(hour, (0, ""))[1], quarantine_checksum=quarantine.get(hour, (0, ""))[1])
        hours.append(entry)
    return {"hours": hours, "totals": {
        "hours": sum(1 for h in hours if h["action"] != "skip"), "rows": sum(h["rows"] for h in hours),
        "quarantined": sum(h["quarantined"] for h in hours),
        "offsets_in_range": sum(h["offsets_in_range"] for h in hours),
    }}
