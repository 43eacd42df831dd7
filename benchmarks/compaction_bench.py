"""Compaction: kafkalake's compaction vs Iceberg's ``rewrite_data_files`` procedure on the same
hours of the same table, and what compacting buys a reader (the same aggregate queries before
and after).

The table: :func:`kafkalake.testing.lakegen.generate_table` builds a stream table (the stream's
decode and table spec, Parquet, partitioned ``hours(timestamp)``) of 10 closed hours x 500 small
files (``--records`` sets the rows; 2,100 rows per file by default). The table keeps the default
compaction policy (128 MiB target files, 16 MiB row groups). Everything runs in one in-process
SparkSession on ``local[2]`` with the project's ``DEFAULT_CONF``, jars and Iceberg catalog, in a
temp folder deleted at the end.

Throughput (MB = 10^6 bytes of the small files per second of wall time), every round from the
small-file snapshot (``rollback_to_snapshot`` before each round, untimed):

* kafkalake: :func:`kafkalake.compaction.run.compact_table` (plan from the snapshot, each
  hour read in one task per output file, source checksums, write to a branch, read-back
  verification, one cherry-pick onto main) as a scheduled run makes it: its table's orphan
  sweep (``compaction.orphan_sweep_hours``, daily by default) is not due. The sweep is timed
  once on its own before the rounds and reported beside them;
* baseline: ``CALL <catalog>.system.rewrite_data_files(table => ..., where => <the closed hours'
  timestamp range>, options => map('target-file-size-bytes', <128 MiB>, 'min-input-files', '2'))``
  with Iceberg's other defaults: bin-packing per partition, one commit, no checksums or read-back.

Both write the same row groups: the policy's ``row_group_mb`` is set as the table property
kafkalake's compaction sets (``write.parquet.row-group-size-bytes``) before the first round.
Rounds (:data:`ROUNDS`, or ``--rounds``) alternate the order (rewrite_data_files, kafkalake | the
reverse); figure: median seconds, and each round's own ratio beside it.
Goal: kafkalake >= 0.8x the MB/s of rewrite_data_files, verification included.

Queries (``count(*), count(temperature), avg(temperature)`` grouped by device, by hour, and by
device over the newest hour) run through Spark SQL on the table and through DuckDB on pyiceberg's
scan (the newest hour's filter pushed into the scan), at the small-file snapshot and at
kafkalake's compacted snapshot; median of 3. Goal: GROUP BY device >= 5x faster after compaction
in both engines, on the 5,000-file table (the other queries are reported). Checks: every
contender rewrote every small file, the aggregates are equal before and after, and the table's
rows (checksum) are equal before, after kafkalake and after rewrite_data_files.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.ingest_bench import terminate_as_exit
from benchmarks.platform import results_dir
from kafkalake.config import Settings, get_settings

HOURS = 10
FILES_PER_HOUR = 500
ROWS_PER_FILE = 2_100
TABLE = "bench_compaction"
TARGET_MB = 128
QUERY_RUNS = 3
ROUNDS = 2
GOAL_RATIO = 0.8
GOAL_SPEEDUP = 5.0
GOAL_QUERY = "by_device"
GOAL_FILES = HOURS * FILES_PER_HOUR
MB = 1_000_000
MIB = 1024 * 1024
KAFKALAKE, ICEBERG = "kafkalake", "rewrite_data_files"
_AGG = "count(*) AS n, count(temperature) AS with_temp, round(avg(temperature), 6) AS avg_temp"
QUERIES = {
    "by_device": "SELECT name AS k, {agg} FROM {t} GROUP BY k",
    "hourly": "SELECT date_trunc('hour', timestamp) AS k, {agg} FROM {t} GROUP BY k",
    "last_hour": "SELECT name AS k, {agg} FROM {t} WHERE timestamp >= {since} GROUP BY k",
}


def _bench_settings(root: Path) -> Settings:
    streams_file = root / "streams.yaml"
    streams_file.write_text(json.dumps({"streams": [{
        "name": TABLE, "topics": ["bench-compaction"], "subject": "fridge", "sink_format": "parquet",
        "compaction": {"target_file_mb": TARGET_MB, "orphan_grace_minutes": 60},
    }]}))  # JSON is YAML
    return get_settings().with_overrides(streams_file=streams_file, lake_root=root / "lake", state_dir=root / "state",
                                         catalog_name="bench")


def _spark_session(settings: Settings) -> Any:
    from pyspark.sql import SparkSession

    from kafkalake.spark import jvm
    from kafkalake.spark.submit import job_conf

    builder = (SparkSession.builder.appName("kafkalake-bench-compaction").master("local[2]")
               .config("spark.jars", jvm.spark_jars_arg(settings)).config("spark.ui.enabled", "false"))
    for key, value in job_conf(settings).items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("WARN")
    return spark


def _timed(action: Any) -> tuple[float, Any]:
    started = time.perf_counter()
    value = action()
    return time.perf_counter() - started, value


def _rollback(spark: Any, settings: Settings, snapshot: int) -> None:
    from kafkalake.catalog.config import catalog_config

    config = catalog_config(settings)
    spark.sql(f"CALL {config.name}.system.rollback_to_snapshot('{config.identifier(TABLE)}', {snapshot})")


def _closed_hours_where(hours: list[Any]) -> str:
    """The ``where`` of rewrite_data_files: the timestamp range of the (consecutive) closed hours."""
    first, last = min(hours), max(hours)
    return (f'`timestamp` >= TIMESTAMP "{first.start:%Y-%m-%d %H:%M:%S}+00:00" AND '
            f'`timestamp` < TIMESTAMP "{last.end:%Y-%m-%d %H:%M:%S}+00:00"')


def _run_iceberg(spark: Any, settings: Settings, small_snapshot: int, where: str) -> dict[str, Any]:
    from kafkalake.catalog.config import catalog_config

    config = catalog_config(settings)
    _rollback(spark, settings, small_snapshot)
    call = (f"CALL {config.name}.system.rewrite_data_files(table => '{config.identifier(TABLE)}', where => '{where}', "
            f"options => map('target-file-size-bytes', '{TARGET_MB * MIB}', 'min-input-files', '2'))")
    seconds, rows = _timed(lambda: spark.sql(call).collect())
    out = rows[0].asDict()
    snapshot = spark.sql(f"SELECT snapshot_id FROM {config.identifier(TABLE)}.refs WHERE name = 'main'").first()[0]
    return {"seconds": round(seconds, 3), "files_rewritten": out.get("rewritten_data_files_count"),
            "files_added": out.get("added_data_files_count"), "bytes_rewritten": out.get("rewritten_bytes_count"),
            "files_failed": out.get("failed_data_files_count"), "snapshot": snapshot}


def _run_kafkalake(spark: Any, settings: Settings, small_snapshot: int) -> dict[str, Any]:
    from datetime import UTC, datetime

    from kafkalake.compaction.run import compact_table
    from kafkalake.lake.tables import resolve_table

    _rollback(spark, settings, small_snapshot)
    stream, ref = resolve_table(settings, TABLE)
    seconds, report = _timed(lambda: compact_table(spark, settings, stream, ref, closed_before=datetime.now(UTC),
                                                   progress=lambda _: None))
    totals = report["totals"]
    return {"seconds": round(seconds, 3), "files_rewritten": totals["files_before"],
            "files_added": totals["files_after"], "bytes_rewritten": totals["bytes_before"],
            "hours": totals["hours_compacted"], "phase_seconds": report.get("phase_seconds"),
            "snapshot": report.get("published_snapshot")}


def _sweep(spark: Any, settings: Settings) -> float:
    """One timed orphan sweep of the table, recorded as a compaction run records it."""
    from kafkalake.catalog.config import catalog_config
    from kafkalake.catalog.iceberg import load_table, remove_orphan_files
    from kafkalake.compaction.run import OrphanSweeps
    from kafkalake.stream.config import get_stream

    grace = get_stream(settings, TABLE).compaction.orphan_grace_minutes
    seconds, _removed = _timed(lambda: remove_orphan_files(
        spark, load_table(spark, catalog_config(settings), TABLE), older_than_minutes=grace))
    OrphanSweeps(settings).swept(TABLE)
    return round(seconds, 3)


def _queries(spark: Any, settings: Settings, snapshot: int, since: Any) -> dict[str, Any]:
    import duckdb
    from pyiceberg.expressions import AlwaysTrue, GreaterThanOrEqual

    from kafkalake.catalog.config import catalog_config, open_catalog

    config = catalog_config(settings)
    since_sql = f"{since:%Y-%m-%d %H:%M:%S}+00:00"
    out: dict[str, Any] = {}
    for name, sql in QUERIES.items():
        spark_sql = sql.format(agg=_AGG, t=f"{config.identifier(TABLE)} VERSION AS OF {snapshot}",
                               since=f"TIMESTAMP '{since_sql}'")
        runs = [_timed(lambda q=spark_sql: sorted(tuple(r) for r in spark.sql(q).collect())) for _ in range(QUERY_RUNS)]
        out[f"spark/{name}"] = {"median": round(statistics.median(s for s, _ in runs), 3), "result": runs[0][1]}
        # a reader of the newest hour hands its filter to the scan (partition and file pruning)
        row_filter = GreaterThanOrEqual("timestamp", since.isoformat()) if "{since}" in sql else AlwaysTrue()

        def duck(q: str = sql, row_filter: Any = row_filter) -> list[tuple]:
            table = open_catalog(settings).load_table(f"{config.namespace}.{TABLE}")
            arrow = table.scan(snapshot_id=snapshot, row_filter=row_filter,
                               selected_fields=("name", "temperature", "timestamp")).to_arrow()
            con = duckdb.connect()
            con.register("rows_", arrow)
            return sorted(con.execute(q.format(agg=_AGG, t="rows_", since=f"TIMESTAMPTZ '{since_sql}'")).fetchall())

        runs = [_timed(duck) for _ in range(QUERY_RUNS)]
        out[f"duckdb/{name}"] = {"median": round(statistics.median(s for s, _ in runs), 3), "result": runs[0][1]}
    return out


def main(*, records: int | None = None, rounds: int = ROUNDS) -> int:
    from kafkalake.catalog.config import catalog_config
    from kafkalake.compaction.merge import ROW_GROUP_PROPERTY
    from kafkalake.compaction.plan import hour_files
    from kafkalake.lake.rewrite import table_checksum
    from kafkalake.stream.config import get_stream
    from kafkalake.testing.lakegen import generate_table, hours_before

    files_per_hour = max(2, math.ceil(records / (HOURS * ROWS_PER_FILE))) if records else FILES_PER_HOUR
    print(f"compaction benchmark: {HOURS} hours x {files_per_hour:,} files x {ROWS_PER_FILE:,} rows, local[2], "
          f"kafkalake vs Iceberg's {ICEBERG} on the same hours, queries before/after (Spark SQL, DuckDB on "
          "pyiceberg)", flush=True)
    load_start = os.getloadavg()
    root = Path(tempfile.mkdtemp(prefix="kafkalake-bench-compaction-"))
    spark = None
    runs: dict[str, list[dict[str, Any]]] = {ICEBERG: [], KAFKALAKE: []}
    try:
        with terminate_as_exit():
            settings = _bench_settings(root)
            spark = _spark_session(settings)
            ident = catalog_config(settings).identifier(TABLE)
            hours = hours_before(count=HOURS)
            seconds, made = _timed(lambda: generate_table(spark, settings, TABLE, hours, files_per_hour=files_per_hour,
                                                          rows_per_hour=files_per_hour * ROWS_PER_FILE))
            small_snapshot, files = hour_files(settings, TABLE)
            assert small_snapshot is not None
            total_bytes = sum(f.bytes for fs in files.values() for f in fs)
            total_files = sum(len(fs) for fs in files.values())
            print(f"  table: {total_files:,} files, {total_bytes / MB:,.1f} MB, {made.tables[TABLE]:,} rows "
                  f"({seconds:.1f}s)", flush=True)
            # the row groups kafkalake's compaction sets on its first run, for every round of both
            row_group = int(get_stream(settings, TABLE).compaction.row_group_mb * MIB)
            spark.sql(f"ALTER TABLE {ident} SET TBLPROPERTIES ('{ROW_GROUP_PROPERTY}' = '{row_group}')")
            where = _closed_hours_where(hours)
            since = hours[-1].start
            before_sum = table_checksum(spark.sql(f"SELECT * FROM {ident} VERSION AS OF {small_snapshot}"))
            before = _queries(spark, settings, small_snapshot, since)
            sweep_seconds = _sweep(spark, settings)
            print(f"  orphan sweep (daily by default, not in the rounds): {sweep_seconds:.1f}s", flush=True)
            for round_no in range(1, rounds + 1):
                for name in ((ICEBERG, KAFKALAKE) if round_no % 2 else (KAFKALAKE, ICEBERG)):
                    result = (_run_iceberg(spark, settings, small_snapshot, where) if name == ICEBERG
                              else _run_kafkalake(spark, settings, small_snapshot))
                    result["mb_per_s"] = round(total_bytes / MB / result["seconds"], 2)
                    runs[name].append(result)
                    print(f"  round {round_no} {name:18} {result['seconds']:6.1f}s = {result['mb_per_s']:6.2f} MB/s "
                          f"({result['files_rewritten']:,} -> {result['files_added']:,} files)", flush=True)
            kafkalake_snapshot = runs[KAFKALAKE][-1]["snapshot"]
            iceberg_snapshot = runs[ICEBERG][-1]["snapshot"]
            _after, after_files = hour_files(settings, TABLE, kafkalake_snapshot)
            after_sum = table_checksum(spark.sql(f"SELECT * FROM {ident} VERSION AS OF {kafkalake_snapshot}"))
            iceberg_sum = table_checksum(spark.sql(f"SELECT * FROM {ident} VERSION AS OF {iceberg_snapshot}"))
            after = _queries(spark, settings, kafkalake_snapshot, since)
    finally:
        if spark is not None:
            spark.stop()
        shutil.rmtree(root, ignore_errors=True)

    median = {n: statistics.median(r["seconds"] for r in rs) for n, rs in runs.items()}
    mb_per_s = {n: round(total_bytes / MB / s, 2) for n, s in median.items()}
    ratio = median[ICEBERG] / median[KAFKALAKE]
    # each round runs both back to back: its own ratio shows how far one run can be trusted
    per_round = [round(i["seconds"] / k["seconds"], 3) for i, k in zip(runs[ICEBERG], runs[KAFKALAKE], strict=True)]
    same = {q: before[q]["result"] == after[q]["result"] for q in before}
    speedup = {q: round(before[q]["median"] / after[q]["median"], 2) if after[q]["median"] else None for q in before}
    judged = {q: s for q, s in speedup.items() if q.endswith(f"/{GOAL_QUERY}")}
    all_rewritten = all(r["files_rewritten"] == total_files and not r.get("files_failed")
                        for rs in runs.values() for r in rs)
    correct = before_sum == after_sum == iceberg_sum and all(same.values()) and all_rewritten
    throughput_met = ratio >= GOAL_RATIO
    queries_met = all(s is not None and s >= GOAL_SPEEDUP for s in judged.values())
    summary = {
        "benchmark": "compaction", "hours": HOURS, "files_before": total_files, "bytes_before": total_bytes,
        "files_after": sum(len(fs) for fs in after_files.values()), "where": where, "rounds": runs,
        "median_seconds": median, "orphan_sweep_seconds": sweep_seconds, "mb_per_s": mb_per_s, "ratio": round(ratio, 3),
        "ratio_per_round": per_round,
        "queries_before": {q: v["median"] for q, v in before.items()},
        "queries_after": {q: v["median"] for q, v in after.items()}, "speedup": speedup, "same_result": same,
        "checksum_before": before_sum, "checksum_after": after_sum, "checksum_rewrite_data_files": iceberg_sum,
        "goal": {
            "throughput": {"ratio": GOAL_RATIO, "met": throughput_met},
            "queries": {"speedup": GOAL_SPEEDUP, "query": GOAL_QUERY, "files": GOAL_FILES, "met": queries_met,
                        "on_goal_table": total_files == GOAL_FILES},
            "correct": correct, "met": throughput_met and queries_met and correct,
        },
        "machine": {"cpus": os.cpu_count(), "load_avg_start": load_start, "load_avg_end": os.getloadavg()},
        "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    out = results_dir() / "compaction.json"
    out.write_text(json.dumps(summary, indent=2, default=str) + "\n")
    print("  queries, median of 3 (s): before -> after = speedup", flush=True)
    for q in before:
        mark = "" if not q.endswith(f"/{GOAL_QUERY}") else f" (goal >= {GOAL_SPEEDUP:.0f}x)"
        print(f"    {q:17} {before[q]['median']:7.2f} -> {after[q]['median']:6.2f} = {speedup[q]}x{mark}", flush=True)
    print(f"throughput: kafkalake {mb_per_s[KAFKALAKE]:.2f} MB/s ({median[KAFKALAKE]:.1f}s) vs {ICEBERG} "
          f"{mb_per_s[ICEBERG]:.2f} MB/s ({median[ICEBERG]:.1f}s) = {ratio:.2f}x (goal >= {GOAL_RATIO}x: "
          f"{'met' if throughput_met else 'NOT met'}); {total_files:,} -> {summary['files_after']:,} files", flush=True)
    print("ratio per round (both back to back): " + " ".join(f"{r:.2f}" for r in per_round)
          + f" (median {statistics.median(per_round):.2f})", flush=True)
    scale = "" if total_files == GOAL_FILES else (f"; the goal is set for {GOAL_FILES:,} files, this table has "
                                                  f"{total_files:,}")
    engines = " / ".join(f"{q.split('/')[0]} {s}x" for q, s in judged.items())
    print(f"queries: GROUP BY device {engines} faster after "
          f"compaction (goal >= {GOAL_SPEEDUP:.0f}x in both: {'met' if queries_met else 'NOT met'}{scale})", flush=True)
    print(f"same rows (checksum) before, after kafkalake and after {ICEBERG}, same query results, every file "
          f"rewritten: {'yes' if correct else 'NO'} -> {out}", flush=True)
    return 0 if correct else 1
