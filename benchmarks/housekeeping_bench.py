"""Snapshot housekeeping: commit time and table metadata over 2,000 stream commits.

A stream commits every trigger, and every commit adds a snapshot, a manifest list and a
manifest to its table; without housekeeping the metadata every commit rewrites (the
``metadata.json`` lists every snapshot) and what a reader plans over grow without end. The
stream's sink runs :func:`kafkalake.catalog.iceberg.housekeep` every
``housekeeping.every_commits`` commits (default 10): it tags the writer's newest commit,
expires old snapshots (``keep_minutes``, but never the newest ``retain_last``) and merges
the manifests once there are more than ``max_manifests``.

The benchmark drives the stream's own sink, :class:`kafkalake.stream.sink.IcebergBatchSink`
(the ``foreachBatch`` function of ``kafkalake stream run``), from one in-process Spark session
on the platform's master (``local[2]``) with the platform's Spark conf and catalog (a temp
SQLite catalog): 2,000 micro-batches (``--records N``: N / 500 of them, at least 200) of 500
fridge records each (30 % v1), decoded by :func:`kafkalake.stream.decode.decode` and committed
exactly as the stream commits them (``writeTo(table).options(commit marker).append()``;
housekeeping every 10 commits). No Kafka broker: each batch is the same 500 Kafka rows at
new offsets, stamped with the current time (so they land in the current hour, as a stream's
do). The policy is the default one with ``keep_minutes: 0``: the benchmark commits far faster
than a stream on its 5 s trigger, so a 60-minute window would never be reached within the
run; with 0 the count bound (``retain_last``) governs, the bound a stream's history also
reaches once it is ``keep_minutes`` old.

Per commit: its duration (the sink's call: decode, write, commit; the housekeeping a call
runs is timed apart), and the table's metadata after it: the current ``metadata.json``'s
bytes + the current manifest list's bytes (what the next commit reads and rewrites), the
number of snapshots and of manifests. A PNG of them over the commit index goes to the results
folder.

Baseline: the same table's first 100 commits. Goal (flat): the median of the last 100
commits <= 1.5x the median of the first 100, for commit time and for metadata bytes.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from benchmarks.ingest_bench import _stream_settings, terminate_as_exit
from benchmarks.platform import bench_state, results_dir
from kafkalake.catalog.iceberg import Housekeeping
from kafkalake.config import LOOPBACK, Settings

COMMITS = 2_000
RECORDS_PER_COMMIT = 500
RECORDS = COMMITS * RECORDS_PER_COMMIT
#: the first and the last this many commits are compared
WINDOW = 100
GOAL_RATIO = 1.5
V1_FRACTION = 0.3
DEVICES = 100
#: the stream's default policy, the time window aside (see the module docstring)
HOUSEKEEPING = {"keep_minutes": 0}


def _session(settings: Settings) -> Any:
    """An in-process session with the platform's jars, Spark conf and Iceberg catalog."""
    import logging

    from pyspark.sql import SparkSession

    from kafkalake.spark import jvm
    from kafkalake.spark.submit import job_conf

    logging.getLogger("py4j").setLevel(logging.WARNING)
    jvm.find_java()
    if settings.spark_master.startswith("local"):  # one machine: as kafkalake.spark.submit.job_env does
        os.environ.setdefault("SPARK_LOCAL_IP", LOOPBACK)
    builder = (SparkSession.builder.appName("kafkalake-bench-housekeeping").master(settings.spark_master)
               .config("spark.jars", jvm.spark_jars_arg(settings)).config("spark.ui.enabled", "false"))
    for key, value in job_conf(settings).items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    return spark


def _template(spark: Any, settings: Settings, topic: str) -> Any:
    """One batch of Kafka rows (key, value, topic, partition, offset), cached in the JVM."""
    from pyspark.sql.types import BinaryType, IntegerType, LongType, StringType, StructField, StructType

    from kafkalake.produce.fleet import fleet_from_registry
    from kafkalake.schema.registry import Registry

    fleet = fleet_from_registry(Registry(settings.schemas_dir), devices=DEVICES, v1_fraction=V1_FRACTION)
    rows = [(bytes(key), bytes(value), topic, i % 2, i)
            for i, (key, value, _sid, _kind) in enumerate(fleet.messages(RECORDS_PER_COMMIT))]
    schema = StructType([StructField("key", BinaryType()), StructField("value", BinaryType()),
                         StructField("topic", StringType()), StructField("partition", IntegerType()),
                         StructField("offset", LongType())])
    template = spark.createDataFrame(rows, schema).cache()
    template.count()
    return template


def _local(uri: str) -> Path:
    return Path(unquote(urlparse(uri).path))


def table_metadata(table: Any) -> dict[str, int]:
    """The Java table's current metadata.json and manifest list bytes, snapshots and manifests."""
    table.refresh()
    current = table.operations().current()
    snapshot = table.currentSnapshot()
    metadata_bytes = _local(current.metadataFileLocation()).stat().st_size
    list_bytes = _local(snapshot.manifestListLocation()).stat().st_size if snapshot is not None else 0
    return {"metadata_json_bytes": metadata_bytes, "manifest_list_bytes": list_bytes,
            "metadata_bytes": metadata_bytes + list_bytes, "snapshots": current.snapshots().size(),
            "manifests": snapshot.allManifests(table.io()).size() if snapshot is not None else 0}


def _plot(commits: list[dict[str, Any]], housekept: list[int], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    index = [c["commit"] for c in commits]
    fig, (ax_time, ax_size, ax_count) = plt.subplots(3, 1, figsize=(11, 9), sharex=True)
    ax_time.plot(index, [c["seconds"] for c in commits], ".", markersize=2, alpha=0.5, label="commit")
    window = 25
    rolling = [statistics.median(c["seconds"] for c in commits[max(0, i - window + 1):i + 1])
               for i in range(len(commits))]
    ax_time.plot(index, rolling, "-", linewidth=1.2, label=f"rolling median ({window})")
    ax_time.set_ylabel("commit seconds")
    ax_time.legend(loc="upper right")
    ax_size.plot(index, [c["metadata_json_bytes"] / 1024 for c in commits], "-", linewidth=1, label="metadata.json")
    ax_size.plot(index, [c["metadata_bytes"] / 1024 for c in commits], "-", linewidth=1,
                 label="metadata.json + manifest list")
    ax_size.set_ylabel("KiB")
    ax_size.legend(loc="upper right")
    ax_count.plot(index, [c["snapshots"] for c in commits], "-", linewidth=1, label="snapshots")
    ax_count.plot(index, [c["manifests"] for c in commits], "-", linewidth=1, label="manifests")
    ax_count.set_ylabel("count")
    ax_count.set_xlabel("commit")
    ax_count.legend(loc="upper right")
    for ax in (ax_time, ax_size, ax_count):
        for commit in housekept:
            ax.axvline(commit, color="grey", linewidth=0.4, alpha=0.4)
        ax.grid(alpha=0.3)
    fig.suptitle(f"stream commits with housekeeping every {Housekeeping().every_commits} (grey lines); "
                 f"{RECORDS_PER_COMMIT} records each")
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


def _ratio(commits: list[dict[str, Any]], key: str) -> dict[str, float]:
    first = statistics.median(c[key] for c in commits[:WINDOW])
    last = statistics.median(c[key] for c in commits[-WINDOW:])
    return {"first_median": round(first, 4), "last_median": round(last, 4),
            "ratio": round(last / first, 3) if first else float("nan")}


def main(*, records: int | None = None) -> int:
    count = records or RECORDS
    total = max(2 * WINDOW, count // RECORDS_PER_COMMIT)
    print(f"housekeeping benchmark: {total:,} stream commits of {RECORDS_PER_COMMIT} fridge records "
          f"(IcebergBatchSink, housekeeping every {Housekeeping().every_commits} commits, {HOUSEKEEPING}), "
          "in-process Spark", flush=True)
    commits: list[dict[str, Any]] = []
    housekeeping: list[dict[str, Any]] = []
    with terminate_as_exit(), bench_state() as settings:
        from pyspark.sql import functions as F

        from kafkalake.catalog.config import catalog_config
        from kafkalake.catalog.iceberg import load_table
        from kafkalake.schema.registry import Registry
        from kafkalake.stream.config import stream_paths
        from kafkalake.stream.decode import decode, decode_plan
        from kafkalake.stream.sink import IcebergBatchSink

        stream_settings, stream = _stream_settings(settings, "housekeeping", "bench-housekeeping",
                                                   housekeeping=HOUSEKEEPING)
        paths = stream_paths(stream_settings, stream)
        paths.checkpoint.mkdir(parents=True)
        (paths.checkpoint / "metadata").write_text(json.dumps({"id": str(uuid.uuid4())}))  # as Spark writes it
        spark = _session(stream_settings)
        try:
            config = catalog_config(stream_settings)
            plan = decode_plan(Registry(stream_settings.schemas_dir), stream.subject)
            template = _template(spark, stream_settings, "bench-housekeeping")

            def batch(batch_id: int) -> Any:
                raw = template.select("key", "value", "topic", "partition",
                                      (F.col("offset") + F.lit(batch_id * RECORDS_PER_COMMIT)).alias("offset"),
                                      F.lit(datetime.now(UTC)).alias("timestamp"))
                return decode(raw, plan)

            sink = IcebergBatchSink(spark, config, stream, plan, paths.checkpoint)
            sink.ensure_tables(batch(0))
            table = load_table(spark, config, stream.tables["parquet"])
            run_housekeeping = sink.housekeep
            spent: dict[str, Any] = {}

            def timed_housekeeping() -> None:
                started = time.perf_counter()
                spent["tables"] = run_housekeeping()
                spent["seconds"] = time.perf_counter() - started

            sink.housekeep = timed_housekeeping  # type: ignore[method-assign]
            started_all = time.perf_counter()
            for batch_id in range(total):
                decoded = batch(batch_id)
                spent.clear()
                started = time.perf_counter()
                sink(decoded, batch_id)
                seconds = time.perf_counter() - started - spent.get("seconds", 0.0)
                commits.append({"commit": batch_id + 1, "seconds": round(seconds, 4), **table_metadata(table)})
                if "seconds" in spent:
                    housekeeping.append({"after_commit": batch_id + 1, "seconds": round(spent["seconds"], 3),
                                         "tables": spent["tables"]})
                if (batch_id + 1) % WINDOW == 0:
                    recent = statistics.median(c["seconds"] for c in commits[-WINDOW:])
                    last = commits[-1]
                    print(f"  commit {batch_id + 1:>5,}/{total:,}: median {recent:.3f}s"
                          f" (last {WINDOW}) | metadata {last['metadata_bytes'] / 1024:7.1f} KiB | snapshots "
                          f"{last['snapshots']:4} | manifests {last['manifests']:3} | housekeeping "
                          f"{housekeeping[-1]['seconds'] if housekeeping else 0:.2f}s | "
                          f"{time.perf_counter() - started_all:6.0f}s", flush=True)
            rows = spark.table(config.identifier(stream.tables["parquet"])).count()
        finally:
            spark.stop()

    times, sizes = _ratio(commits, "seconds"), _ratio(commits, "metadata_bytes")
    snapshots = _ratio(commits, "snapshots")
    rows_ok = rows == total * RECORDS_PER_COMMIT
    met = times["ratio"] <= GOAL_RATIO and sizes["ratio"] <= GOAL_RATIO
    out = results_dir() / "housekeeping.json"
    png = results_dir() / "housekeeping.png"
    _plot(commits, [h["after_commit"] for h in housekeeping], png)
    summary = {
        "benchmark": "housekeeping",
        "commits": total,
        "records_per_commit": RECORDS_PER_COMMIT,
        "housekeeping_policy": HOUSEKEEPING,
        "method": "IcebergBatchSink called per batch in one Spark session; commit seconds = the call minus the "
                  "housekeeping it ran; metadata_bytes = current metadata.json + current manifest list; "
                  f"ratio = median of the last {WINDOW} commits / median of the first {WINDOW}",
        "commit_seconds": times,
        "metadata_bytes": sizes,
        "snapshots": snapshots,
        "table_rows": rows,
        "table_rows_ok": rows_ok,
        "housekeeping": housekeeping,
        "per_commit": commits,
        "plot": str(png),
        "goal": {"ratio": GOAL_RATIO, "met": met},
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "load_avg": os.getloadavg()},
        "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    out.write_text(json.dumps(summary, indent=2) + "\n")
    hk = [h["seconds"] for h in housekeeping]
    print(f"commit time: first {WINDOW} median {times['first_median']:.3f}s, last {WINDOW} {times['last_median']:.3f}s "
          f"({times['ratio']:.2f}x) | metadata: {sizes['first_median'] / 1024:.1f} KiB -> "
          f"{sizes['last_median'] / 1024:.1f} KiB ({sizes['ratio']:.2f}x) | snapshots {snapshots['first_median']:.0f}"
          f" -> {snapshots['last_median']:.0f} | housekeeping {len(hk)} runs, median "
          f"{statistics.median(hk) if hk else 0:.2f}s | table rows {rows:,} ({'all' if rows_ok else 'NOT all'} "
          f"committed); goal <= {GOAL_RATIO}x for both: {'met' if met else 'NOT met'} -> {out}, {png}", flush=True)
    return 0 if rows_ok else 1
