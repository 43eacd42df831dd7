"""Compaction: kafkalake's compaction vs a naive Spark rewrite, same data, same run; and what
compacting buys a reader (the same aggregate query before and after).

The lake: :func:`kafkalake.lakegen.generate_landing` writes a Spark-file-sink-shaped landing
(Parquet, ``zone=landing/dt=/hour=``, ``_spark_metadata`` commit log) of 10 closed hours x 500
files x 4,200 fridge rows: 5,000 files of ~105 KB, ~525 MB, 21 M rows (``--records`` changes
the rows and so the files per hour; the figures are then below the target scale). The table
(a temp ``streams.yaml``) keeps the default compaction policy: 128 MiB target files, no
``sort_by``, 168 h landing retention — so the landing files survive compaction and every round
compacts the same source. kafkalake runs under two policies (:data:`POLICIES`), each measured
for throughput and for the queries after it: as configured (no order within files), and with
``cluster_by: [name]`` (each device's rows side by side: what the GROUP BY name queries read,
bought with a sort of every hour). Everything runs in one in-process Spark session on ``local[2]`` with
the project's ``DEFAULT_CONF`` and jars, in a temp folder deleted at the end.

Throughput (MB = 10^6 bytes of landing Parquet per second of wall time):

* naive: ``spark.read.parquet(landing)`` (the sink's commit log decides the files) filtered to
  ``zone='landing'``, the table's columns, ``.repartition(n)``, ``.write.parquet(scratch)`` with
  n = ceil(landing bytes / 128 MiB) — one job over everything, the tutorial notebook's
  ``read -> repartition(n) -> write``. It is the cheapest rewrite that yields files
  of the target size: no per-hour jobs, no checksums, no read-back, no manifest. (Its output
  is not laid out by hour, which the lake needs; that layout is part of what kafkalake pays.)
* kafkalake: :func:`kafkalake.compaction.compact_table` (plan; per hour one write job with
  ``repartition(n)``, the source checksum observed in the same pass, and one read-back
  verification job, as many hours at a time as Spark has cores; atomic manifest publish;
  cleanup) into an empty lake folder.

Rounds alternate the order (naive, kafkalake, kafkalake_clustered | the reverse) so JIT and
page-cache warm-up is shared; the "before" queries run first and warm the JVM and the page
cache for all. Compaction of a landing is a no-op the second time, so every kafkalake run
deletes the lake folder first (the landing is untouched). Figure: median (= mean of 2) seconds
per contender. Goal: kafkalake >= 0.8x the naive MB/s while verifying and publishing
atomically.

Two clocks for every rewrite and query: wall (the goals) and CPU seconds of the Spark JVM plus
this process (``/proc/<pid>/stat`` + ``time.process_time``). On a shared 2-core machine other
load stretches wall time but hardly CPU time, so the CPU ratio shows the extra *work*
(checksums, read-back) while the wall ratio also shows lost parallelism (a stage with fewer
tasks than cores leaves a core idle). Both go to the JSON with the load average at start/end.

Reading: the same aggregates before compaction (5,000 landing files) and after (the lake
files): ``count(*), count(temperature), avg(temperature)`` GROUP BY ``name`` (``by_device``,
5,000 groups; the goal is judged on it) and GROUP BY hour of the Kafka timestamp
(``hourly``), each over every row, and ``by_device`` over the newest hour only (``last_hour``,
a filter on the timestamp: what a dashboard asks), all reported, by

* DuckDB: ``read_parquet([...])`` over :func:`kafkalake.lake.table_files` (the read path's
  file list; resolving it is inside the clock);
* Spark: ``read_table(spark, name).groupBy(key).agg(...).collect()`` (THE read path).

One untimed warm-up run, then the median of 3 runs each, over each policy's lake right after
its round-1 compaction. Goal: >= 5x faster after, for both engines. The verdict is
per policy: the goals count as met when one policy meets all of them. Checks: the
aggregates before and after are equal (counts exactly, averages within 1e-9 relative), and the
table's rows are equal before and after (count and an order-independent DuckDB hash sum over
every table column, independent of kafkalake's own Spark checksum). File counts and mean file
sizes before/after are reported, with kafkalake's per-phase wall seconds (write incl. the
observed source checksum, read-back verification, the rest = plan + publish + cleanup).
"""

from __future__ import annotations

import json
import math
import os
import platform
import shutil
import statistics
import tempfile
import time
from dataclasses import asdict, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmarks.ingest_bench import terminate_as_exit
from benchmarks.platform import results_dir
from kafkalake.config import Settings, get_settings

HOURS = 10
FILES_PER_HOUR = 500
ROWS_PER_FILE = 4_200  # ~105 KB of snappy Parquet per file
TABLE = "bench_compaction"
TARGET_MB = 128
QUERY_RUNS = 3
ROUNDS = 2
GOAL_RATIO = 0.8
GOAL_SPEEDUP = 5.0
MIN_FILES = 5_000
MIN_BYTES = 500_000_000
MB = 1_000_000
REL_TOL = 1e-9

#: the table's columns as DuckDB hashes them: one type per column whoever wrote the file
#: (hive-typed dt/hour in landing paths vs. Spark-written columns; INT96 vs. micros)
_HASH_COLUMNS = ("name", "action", "sendtime::BIGINT", "temperature::DOUBLE", "schema_id::BIGINT",
                 "schema_version::BIGINT", "topic", '"partition"::BIGINT', '"offset"::BIGINT',
                 'epoch_us("timestamp")', "dt::VARCHAR", "hour::BIGINT")
#: the aggregate queries, each ``(key, count(*), count(temperature), avg(temperature))`` per group:
#: ``by_device`` (the fleet's per-fridge figures, 5,000 groups) and ``hourly`` (per hour of the
#: Kafka timestamp, 10 groups) read every row: after compaction they are compute-bound.
#: ``last_hour`` is ``by_device`` over the newest hour only (a time-window filter, as a
#: dashboard asks it): it reads a tenth of the rows, and the files of other hours are skipped
#: by their footers' min/max (DuckDB, Spark's Parquet filter push-down) — but every landing
#: file must still be opened to read its footer.
_DUCKDB_KEYS = {"by_device": "name", "hourly": 'epoch_us("timestamp") // 3600000000', "last_hour": "name"}
_AGG_SQL = ("SELECT {key} AS k, count(*) AS n, count(temperature) AS with_temp, avg(temperature) AS avg_temp "
            "FROM read_parquet({files}, hive_partitioning = false){where} GROUP BY k")
QUERIES = tuple(_DUCKDB_KEYS)
#: the query the >= 5x goal is judged on (all are reported)
GOAL_QUERY = "by_device"
#: kafkalake's contenders: the table's compaction policy as configured (no order within files)
#: and with ``cluster_by: [name]`` (rows of a device side by side: what the by-device queries
#: read), each measured for throughput and for the queries after it
POLICIES: dict[str, dict[str, Any]] = {"kafkalake": {}, "kafkalake_clustered": {"cluster_by": ("name",)}}
#: [start, end) of the newest generated hour, epoch seconds (set by main)
_WINDOW: dict[str, int] = {}


# --------------------------------------------------------------------------- set-up


def _bench_settings(root: Path) -> Settings:
    """A temp streams.yaml with one table on the fridge subject, default compaction policy."""
    streams_file = root / "streams.yaml"
    streams_file.write_text(json.dumps({"streams": [{
        "name": TABLE, "topics": ["bench-compaction"], "subject": "fridge", "sink_format": "parquet",
        "compaction": {"target_file_mb": TARGET_MB, "landing_retention_hours": 168, "reader_grace_minutes": 10},
    }]}))  # JSON is YAML
    return get_settings().with_overrides(streams_file=streams_file, lake_root=root / "lake", state_dir=root / "state")


def _spark_session(settings: Settings):
    from pyspark.sql import SparkSession

    from kafkalake.spark import jvm
    from kafkalake.spark.submit import DEFAULT_CONF

    builder = (SparkSession.builder.appName("kafkalake-bench-compaction").master("local[2]")
               .config("spark.jars", jvm.spark_jars_arg(settings)).config("spark.ui.enabled", "false"))
    for key, value in DEFAULT_CONF.items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("WARN")
    return spark


def _data_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("part-*") if p.is_file())


def _files_summary(files: list[Path]) -> dict[str, Any]:
    sizes = [f.stat().st_size for f in files]
    return {"files": len(sizes), "bytes": sum(sizes), "mean_file_bytes": round(sum(sizes) / len(sizes)) if sizes else 0}


class CpuClock:
    """CPU seconds of the benchmark's processes: the Spark JVM (local mode: driver and executor
    threads) from ``/proc/<pid>/stat`` plus this Python process (driver code, DuckDB's threads).
    A second clock beside the wall: other load on the machine stretches wall time, not CPU time."""

    def __init__(self, spark) -> None:
        self._stat = Path(f"/proc/{spark._jvm.java.lang.ProcessHandle.current().pid()}/stat")
        self._tick = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100

    def __call__(self) -> float:
        try:
            fields = self._stat.read_text().rsplit(")", 1)[1].split()
            jvm = (int(fields[11]) + int(fields[12])) / self._tick  # utime + stime
        except (OSError, IndexError, ValueError):  # not Linux: the Python side only
            jvm = 0.0
        return jvm + time.process_time()


# --------------------------------------------------------------------------- the rewrites


def _run_naive(spark, cpu: CpuClock, paths, columns: list[str], outputs: int, scratch: Path) -> dict[str, Any]:
    from pyspark.sql import functions as F

    shutil.rmtree(scratch, ignore_errors=True)
    started, cpu_started = time.perf_counter(), cpu()
    (spark.read.parquet(str(paths.landing)).where(F.col("zone") == "landing").select(*columns)
     .repartition(outputs).write.parquet(str(scratch)))
    seconds, cpu_seconds = time.perf_counter() - started, cpu() - cpu_started
    out = {"seconds": round(seconds, 3), "cpu_seconds": round(cpu_seconds, 2), "outputs": outputs,
           **_files_summary(_data_files(scratch))}
    shutil.rmtree(scratch, ignore_errors=True)
    return out


def _run_kafkalake(spark, cpu: CpuClock, settings: Settings, stream, paths) -> dict[str, Any]:
    from kafkalake.compaction.run import compact_table

    shutil.rmtree(paths.lake, ignore_errors=True)  # a fresh lake: the whole landing is to compact
    started, cpu_started = time.perf_counter(), cpu()
    report = compact_table(spark, settings, stream, paths, closed_before=datetime.now(UTC),
                           progress=lambda _line: None)
    seconds, cpu_seconds = time.perf_counter() - started, cpu() - cpu_started
    totals = report["totals"]
    if totals["hours_compacted"] == 0:
        raise RuntimeError(f"compaction did nothing: {json.dumps(report['plan'][:3])}")
    phases = report["phase_seconds"]
    rest = seconds - phases["write"] - phases["verify"]
    return {"seconds": round(seconds, 3), "cpu_seconds": round(cpu_seconds, 2), "report_seconds": report["seconds"],
            "totals": totals,
            "phase_seconds": {"write": phases["write"], "verify": phases["verify"],
                              "plan_publish_cleanup": round(rest, 3)},
            "cleanup": report.get("cleanup")}


# --------------------------------------------------------------------------- the reads


def _duckdb_query(paths, query: str) -> tuple[float, list[tuple]]:
    import duckdb

    from kafkalake.lake.read import table_files

    started = time.perf_counter()
    landing, lake = table_files(paths)
    files = [str(f) for f in landing + lake]
    where = (f' WHERE "timestamp" >= to_timestamp({_WINDOW["start"]}) AND "timestamp" < to_timestamp({_WINDOW["end"]})'
             if query == "last_hour" else "")
    with duckdb.connect() as con:
        rows = con.execute(_AGG_SQL.format(key=_DUCKDB_KEYS[query], files=_sql_list(files), where=where)).fetchall()
    return time.perf_counter() - started, rows


def _spark_query(spark, settings: Settings, query: str) -> tuple[float, list[tuple]]:
    from pyspark.sql import functions as F

    from kafkalake.lake.read import read_table

    key = F.expr("unix_micros(timestamp) div 3600000000") if query == "hourly" else F.col("name")
    started = time.perf_counter()
    table = read_table(spark, TABLE, settings=settings)
    if query == "last_hour":
        start, end = (datetime.fromtimestamp(_WINDOW[k], UTC) for k in ("start", "end"))
        table = table.where((F.col("timestamp") >= F.lit(start)) & (F.col("timestamp") < F.lit(end)))
    rows = (table.groupBy(key.alias("k"))
            .agg(F.count(F.lit(1)).alias("n"), F.count("temperature").alias("with_temp"),
                 F.avg("temperature").alias("avg_temp")).collect())
    seconds = time.perf_counter() - started
    return seconds, [tuple(r) for r in rows]


def _sql_list(files: list[str]) -> str:
    return "[" + ", ".join("'" + f.replace("'", "''") + "'" for f in files) + "]"


def _queries(spark, cpu: CpuClock, settings: Settings, paths, label: str) -> dict[str, Any]:
    """``{"<engine>/<query>": timings and result}`` for every engine and query."""
    out: dict[str, Any] = {}
    for query in QUERIES:
        for engine, run in (("duckdb", lambda q=query: _duckdb_query(paths, q)),
                            ("spark", lambda q=query: _spark_query(spark, settings, q))):
            times, cpus, result = [], [], None
            run()  # warm-up, untimed: JIT, page cache and DuckDB's metadata alike for before and after
            for i in range(QUERY_RUNS):
                cpu_started = cpu()
                seconds, rows = run()
                cpus.append(cpu() - cpu_started)
                times.append(seconds)
                result = rows if result is None else result
                print(f"    {label:6} {engine:6} {query:9} run {i + 1}: {seconds:6.2f}s, cpu {cpus[-1]:6.2f}s "
                      f"({len(rows):,} groups)", flush=True)
            out[f"{engine}/{query}"] = {
                "seconds": [round(t, 3) for t in times], "median": round(statistics.median(times), 3),
                "cpu_seconds": [round(c, 2) for c in cpus], "cpu_median": round(statistics.median(cpus), 2),
                "result": sorted(result)}
    return out


def _same_aggregates(a: list[tuple], b: list[tuple]) -> bool:
    if len(a) != len(b):
        return False
    for (name_a, n_a, t_a, avg_a), (name_b, n_b, t_b, avg_b) in zip(a, b, strict=True):
        if (name_a, n_a, t_a) != (name_b, n_b, t_b):
            return False
        if (avg_a is None) != (avg_b is None):
            return False
        if avg_a is not None and not math.isclose(avg_a, avg_b, rel_tol=REL_TOL, abs_tol=1e-12):
            return False
    return True


def _table_digest(paths) -> dict[str, Any]:
    """(rows, sum of per-row hashes) of the table the read path sees, in DuckDB."""
    import duckdb

    from kafkalake.lake.read import table_files

    landing, lake = table_files(paths)
    digest = {"rows": 0, "hash_sum": 0, "landing_files": len(landing), "lake_files": len(lake)}
    with duckdb.connect() as con:
        for files, hive in ((landing, True), (lake, False)):
            if not files:
                continue
            rows, total = con.execute(
                f"SELECT count(*), coalesce(sum(hash({', '.join(_HASH_COLUMNS)})::HUGEINT), 0) "
                f"FROM read_parquet({_sql_list([str(f) for f in files])}, hive_partitioning={str(hive).lower()})"
            ).fetchone()
            digest["rows"] += rows
            digest["hash_sum"] += int(total)
    digest["hash_sum"] = str(digest["hash_sum"])
    return digest


# --------------------------------------------------------------------------- main


def _rate(nbytes: int, seconds: float) -> float:
    return nbytes / MB / seconds if seconds else float("nan")


def main(*, records: int | None = None) -> int:
    from kafkalake.lake.read import landing_schema, table_columns
    from kafkalake.lake.tables import resolve_table
    from kafkalake.schema.registry import Registry
    from kafkalake.testing.lakegen import generate_landing, hours_before

    files_per_hour = max(2, math.ceil(records / (HOURS * ROWS_PER_FILE))) if records else FILES_PER_HOUR
    total_files = HOURS * files_per_hour
    print(f"compaction benchmark: {HOURS} hours x {files_per_hour:,} files x {ROWS_PER_FILE:,} rows "
          f"({total_files:,} files, {total_files * ROWS_PER_FILE:,} rows), local[2], naive rewrite vs kafkalake, "
          f"queries before/after (DuckDB, Spark)", flush=True)
    load_start = os.getloadavg()
    if load_start[0] > (os.cpu_count() or 1) / 2:
        print(f"  note: the machine is busy (load {load_start[0]:.1f} on {os.cpu_count()} cores): "
              "figures will be noisy", flush=True)
    root = Path(tempfile.mkdtemp(prefix="kafkalake-bench-compaction-"))
    spark = None
    runs: dict[str, list[dict[str, Any]]] = {"naive": [], **{c: [] for c in POLICIES}}
    after: dict[str, dict[str, Any]] = {}
    digest_after: dict[str, dict[str, Any]] = {}
    try:
        with terminate_as_exit():
            settings = _bench_settings(root)
            stream, paths = resolve_table(settings, TABLE)
            every = max(1, total_files // 10)
            started = time.perf_counter()
            hours = hours_before(count=HOURS)
            _WINDOW.update(start=int(hours[-1].start.timestamp()), end=int(hours[-1].end.timestamp()))
            generated = generate_landing(
                paths.landing, hours, files_per_hour=files_per_hour, rows_per_file=ROWS_PER_FILE,
                progress=lambda done, total: print(f"  generating: {done:>6,} of {total:,} files "
                                                   f"({time.perf_counter() - started:5.1f}s)", flush=True)
                if done % every == 0 or done == total else None,
            )
            print(f"  landing: {generated.files:,} files, {generated.bytes / MB:,.1f} MB ({generated.bytes:,} bytes), "
                  f"{generated.rows:,} rows, mean {generated.bytes / generated.files / 1000:,.1f} KB per file "
                  f"({time.perf_counter() - started:.1f}s)", flush=True)
            at_scale = generated.files >= MIN_FILES and generated.bytes >= MIN_BYTES
            if not at_scale:
                print(f"  note: below the target scale (>= {MIN_FILES:,} files, >= {MIN_BYTES / MB:,.0f} MB)",
                      flush=True)

            spark = _spark_session(settings)
            cpu = CpuClock(spark)
            latest = Registry(settings.schemas_dir).latest(stream.subject)
            columns = table_columns(landing_schema(spark, latest.schema_json))
            naive_outputs = max(1, math.ceil(generated.bytes / (TARGET_MB * 1024 * 1024)))

            print("  before compaction: queries over the landing files", flush=True)
            digest_before = _table_digest(paths)
            before = _queries(spark, cpu, settings, paths, "before")

            contenders = ("naive", *POLICIES)
            for round_no in range(1, ROUNDS + 1):
                order = contenders if round_no % 2 else contenders[::-1]
                for name in order:
                    if name == "naive":
                        result = _run_naive(spark, cpu, paths, columns, naive_outputs, root / f"naive-r{round_no}")
                        extra = f"{result['files']} file(s), mean {result['mean_file_bytes'] / MB:,.1f} MB"
                    else:
                        policy = replace(stream.compaction, **POLICIES[name])
                        result = _run_kafkalake(spark, cpu, settings, replace(stream, compaction=policy), paths)
                        t, p = result["totals"], result["phase_seconds"]
                        extra = (f"{t['files_before']:,} -> {t['files_after']} file(s), mean "
                                 f"{t['mean_file_bytes_after'] / MB:,.1f} MB, {t['rows']:,} rows verified | write "
                                 f"{p['write']:.1f}s, verify {p['verify']:.1f}s, plan+publish+cleanup "
                                 f"{p['plan_publish_cleanup']:.1f}s")
                    result["mb_per_s"] = round(_rate(generated.bytes, result["seconds"]), 2)
                    runs[name].append(result)
                    print(f"  round {round_no} {name:19} {result['seconds']:6.1f}s = {result['mb_per_s']:6.2f} MB/s, "
                          f"cpu {result['cpu_seconds']:6.1f}s | "
                          f"{extra}", flush=True)
                    if name != "naive" and round_no == 1:
                        print(f"  after compaction ({name}): queries over the lake files", flush=True)
                        digest_after[name] = _table_digest(paths)
                        after[name] = _queries(spark, cpu, settings, paths, "after")
    finally:
        if spark is not None:
            spark.stop()
        shutil.rmtree(root, ignore_errors=True)

    seconds = {n: statistics.median([r["seconds"] for r in rs]) for n, rs in runs.items()}
    rate = {n: round(_rate(generated.bytes, s), 2) for n, s in seconds.items()}
    cpu_seconds = {n: statistics.median([r["cpu_seconds"] for r in rs]) for n, rs in runs.items()}
    per_policy: dict[str, dict[str, Any]] = {}
    for policy in POLICIES:
        ratio = rate[policy] / rate["naive"]
        cpu_ratio = cpu_seconds["naive"] / cpu_seconds[policy] if cpu_seconds[policy] else float("nan")
        post = after[policy]
        speedup = {e: before[e]["median"] / post[e]["median"] for e in before}
        cpu_speedup = {e: before[e]["cpu_median"] / post[e]["cpu_median"] if post[e]["cpu_median"] else float("nan")
                       for e in before}
        same = {e: _same_aggregates(before[e]["result"], post[e]["result"]) for e in before}
        digest = digest_after[policy]
        rows_equal = (digest_before["rows"] == digest["rows"] == generated.rows
                      and digest_before["hash_sum"] == digest["hash_sum"] and digest["landing_files"] == 0)
        correct = rows_equal and all(same.values()) and all(r["totals"]["rows"] == generated.rows for r in runs[policy])
        met = {"throughput": ratio >= GOAL_RATIO, "duckdb": speedup[f"duckdb/{GOAL_QUERY}"] >= GOAL_SPEEDUP,
               "spark": speedup[f"spark/{GOAL_QUERY}"] >= GOAL_SPEEDUP, "correct": correct, "at_scale": at_scale}
        totals = runs[policy][0]["totals"]
        per_policy[policy] = {
            "compaction": {**asdict(stream.compaction), **POLICIES[policy]},
            "ratio": round(ratio, 3), "cpu_ratio": round(cpu_ratio, 3),
            "files": {"before": totals["files_before"], "after": totals["files_after"],
                      "mean_file_bytes_before": round(totals["mean_file_bytes_before"]),
                      "mean_file_bytes_after": round(totals["mean_file_bytes_after"]),
                      "bytes_before": totals["bytes_before"], "bytes_after": totals["bytes_after"]},
            "queries_after": {e: {k: v for k, v in q.items() if k != "result"} for e, q in post.items()},
            "speedup": {e: round(x, 2) for e, x in speedup.items()},
            "cpu_speedup": {e: round(x, 2) for e, x in cpu_speedup.items()}, "same_result": same,
            "table_digest_after": digest, "rows_equal": rows_equal,
            "goal": {**met, "met": all(met.values())},
        }
    summary = {
        "benchmark": "compaction",
        "landing": {"hours": HOURS, "files": generated.files, "bytes": generated.bytes, "rows": generated.rows,
                    "mean_file_bytes": round(generated.bytes / generated.files)},
        "method": "one in-process Spark session (local[2], DEFAULT_CONF); MB = 1e6 bytes of landing Parquet per "
                  "wall second; naive = read.parquet(landing).where(zone=landing).select(table columns)"
                  f".repartition({naive_outputs}).write.parquet; kafkalake = compact_table into an empty lake, per "
                  f"policy {json.dumps(POLICIES)}; rounds alternate the order naive, policies... | reversed; median "
                  "seconds. Queries: count(*), count(temperature), avg(temperature) GROUP BY name (by_device), "
                  "GROUP BY hour of timestamp (hourly), and GROUP BY name over the newest hour (last_hour, "
                  "a timestamp filter), "
                  f"median of {QUERY_RUNS}, DuckDB over table_files, Spark over read_table, after each policy's first "
                  f"compaction; speed-up goal judged on {GOAL_QUERY}",
        "rounds": runs,
        "median_seconds": seconds,
        "mb_per_s": rate,
        "median_cpu_seconds": cpu_seconds,
        "naive_files": {"files": runs["naive"][0]["files"], "mean_file_bytes": runs["naive"][0]["mean_file_bytes"]},
        "queries_before": {e: {k: v for k, v in q.items() if k != "result"} for e, q in before.items()},
        "groups": {q: len(before[f"duckdb/{q}"]["result"]) for q in QUERIES}, "goal_query": GOAL_QUERY,
        "table_digest_before": digest_before,
        "policies": per_policy,
        "goal": {"ratio": GOAL_RATIO, "speedup": GOAL_SPEEDUP,
                 "met_by": [p for p, r in per_policy.items() if r["goal"]["met"]]},
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "load_avg_start": load_start,
                    "load_avg_end": os.getloadavg()},
        "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    out = results_dir() / "compaction.json"
    out.write_text(json.dumps(summary, indent=2, default=str) + "\n")
    print(f"naive: {runs['naive'][0]['files']} files (mean {runs['naive'][0]['mean_file_bytes'] / MB:,.1f} MB), "
          f"{rate['naive']:,.2f} MB/s, cpu {cpu_seconds['naive']:.1f}s", flush=True)
    for policy, r in per_policy.items():
        f, met = r["files"], r["goal"]
        print(f"{policy} {json.dumps(POLICIES[policy]) if POLICIES[policy] else '(policy as configured)'}: "
              f"{f['before']:,} landing files (mean {f['mean_file_bytes_before'] / 1000:,.1f} KB) -> {f['after']} lake "
              f"files (mean {f['mean_file_bytes_after'] / MB:,.1f} MB)", flush=True)
        print(f"  throughput: {rate[policy]:,.2f} MB/s (verify + publish) = {r['ratio']:.2f}x naive "
              f"(median of {ROUNDS}; goal >= {GOAL_RATIO}x: {'met' if met['throughput'] else 'NOT met'}); "
              f"cpu {cpu_seconds[policy]:.1f}s = {r['cpu_ratio']:.2f}x", flush=True)
        for key in before:
            engine, query = key.split("/")
            x = r["speedup"][key]
            verdict = (f"goal >= {GOAL_SPEEDUP:g}x: {'met' if met[engine] else 'NOT met'}" if query == GOAL_QUERY
                       else f"{'>=' if x >= GOAL_SPEEDUP else '<'} {GOAL_SPEEDUP:g}x; goal judged on {GOAL_QUERY}")
            print(f"  query {engine:6} {query:9}: before {before[key]['median']:6.2f}s | after "
                  f"{r['queries_after'][key]['median']:6.2f}s | {x:5.1f}x faster (median of {QUERY_RUNS}; {verdict}); "
                  f"cpu {r['cpu_speedup'][key]:.1f}x; same result: {'yes' if r['same_result'][key] else 'NO'}",
                  flush=True)
        print(f"  table unchanged ({r['table_digest_after']['rows']:,} rows, DuckDB row-hash sum): "
              f"{'yes' if r['rows_equal'] else 'NO'}; goals {'met' if met['met'] else 'NOT met'}", flush=True)
    met_by = summary["goal"]["met_by"]
    print(f"every goal met by: {', '.join(met_by) if met_by else 'no policy'} -> {out}", flush=True)
    return 0 if met_by else 1
