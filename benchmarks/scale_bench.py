"""Ingest on the local cluster: against ``local[2]``, against topic partitions, against record size.

A local cluster of real processes (:mod:`kafkalake.platform.local_kafka` with 3 KRaft brokers,
replication 3, ``min.insync.replicas=2``; :mod:`kafkalake.platform.local_spark`, a Spark
standalone master with 2 workers)
in a temp state folder. Every run is the project's stream job, ``--available-now`` over a
preloaded topic in :data:`BATCHES` micro-batches, with a fresh checkpoint and table; the rate
is rows over the batches' processing time (``offsets/N`` -> ``commits/N`` of the checkpoint,
as in :mod:`benchmarks.ingest_bench`: no JVM start), batches 2..N (steady).

1. **cluster vs local[2]**: the same topic (fridge records, 4 partitions) read by the job on the
   ``spark://`` master and by the job on ``local[2]`` of the same machine (which still reads the
   3-broker cluster). On 2 cores the cluster adds executors, RPC and the master; the ratio shows
   that overhead, not a speed-up. The runs alternate, :data:`ROUNDS` each.
2. **partitions**: fridge records in topics of 1, 2, 4 and 8 partitions, on the master.
3. **record size**: records of one subject with a ``payload`` string of ~1 KB and ~10 KB next to
   the fridge records (their mean value size measured), on the master; records/s and MB/s.

The figures go to ``$STATE/bench/scale.json`` and a PNG next to it.
"""

from __future__ import annotations

import contextlib
import json
import random
import statistics
import string
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from benchmarks.ingest_bench import SparkProcess, _stream_settings, batch_seconds, checkpoint_tick, terminate_as_exit
from benchmarks.platform import bench_state, results_dir
from kafkalake.catalog.reading import row_count
from kafkalake.config import CLUSTER_PORT_STEP, Settings
from kafkalake.kafka.topics import create_topic
from kafkalake.platform import local_kafka as kafka_local
from kafkalake.platform import local_spark as spark_local
from kafkalake.platform.processes import free_port_run, free_ports
from kafkalake.produce.fleet import fleet_from_registry
from kafkalake.produce.producer import produce_parallel, produce_timed
from kafkalake.schema.registry import Registry
from kafkalake.spark.submit import stream_conf
from kafkalake.stream.config import stream_paths

RECORDS = 200_000
BATCHES = 5
ROUNDS = 2
PARTITIONS = (1, 2, 4, 8)
#: record sizes: (label, payload characters, records); the fridge record has no payload
SIZES = (("fridge", 0, RECORDS), ("1 KB", 1_000, 60_000), ("10 KB", 10_000, 12_000))
RUN_TIMEOUT = 1200.0

PAYLOAD_SCHEMA = json.dumps({
    "type": "record", "name": "Reading", "namespace": "bench",
    "fields": [{"name": "device", "type": "string"}, {"name": "payload", "type": "string"}],
})


@contextlib.contextmanager
def bench_cluster() -> Iterator[Settings]:
    """3 brokers + a Spark master and 2 workers on free ports, in a temp state folder."""
    brokers = ",".join(f"127.0.0.1:{p}" for p in free_ports(3))
    controller = free_port_run(CLUSTER_PORT_STEP, 3)
    master = free_port_run(1, 4)
    with bench_state(KAFKALAKE_CLUSTER="true", KAFKALAKE_BOOTSTRAP_SERVERS=brokers,
                     KAFKALAKE_KAFKA_CONTROLLER_PORT=str(controller),
                     KAFKALAKE_SPARK_MASTER=f"spark://127.0.0.1:{master}") as settings:
        try:
            print(f"  starting 3 brokers ({settings.bootstrap_servers})", flush=True)
            kafka_local.start(settings)
            print(f"  starting Spark standalone ({settings.spark_master}, 2 workers)", flush=True)
            spark_local.start(settings)
            yield settings
        finally:
            spark_local.stop(settings)
            kafka_local.stop(settings)


def _fridge_value_bytes(settings: Settings) -> float:
    """The mean size of a fridge record's Kafka value (header + Avro), over a sample."""
    fleet = fleet_from_registry(Registry(settings.schemas_dir), devices=100, v1_fraction=0.3)
    values = [value for _key, value, _sid, _kind in fleet.messages(2000)]
    return sum(len(v) for v in values) / len(values)


def _preload_fridge(settings: Settings, topic: str, partitions: int, count: int) -> int:
    fleet = fleet_from_registry(Registry(settings.schemas_dir), devices=100, v1_fraction=0.3)
    create_topic(settings.bootstrap_servers, topic, partitions=partitions, replication_factor=3)
    report = produce_parallel(bootstrap_servers=settings.bootstrap_servers, topic=topic, workers=2,
                              shard_messages=lambda shard, shards: fleet.messages(count, shard=shard, shards=shards))
    report.raise_for_loss(topic)
    return report.delivered


def _preload_payload(settings: Settings, topic: str, chars: int, count: int) -> tuple[int, int]:
    """``count`` records of ``bench-payload`` with a ``chars``-long payload; (records, value bytes)."""
    from kafkalake.wire.encoder import encode

    registry = Registry(settings.schemas_dir)
    version = registry.register("bench-payload", PAYLOAD_SCHEMA)
    rng = random.Random(7)
    text = "".join(rng.choice(string.ascii_letters) for _ in range(chars))
    create_topic(settings.bootstrap_servers, topic, partitions=4, replication_factor=3)
    values = [encode(version, {"device": f"dev-{i % 100}", "payload": text}) for i in range(min(count, 100))]
    now = time.time()
    sent = produce_timed(settings.bootstrap_servers, topic,
                         ((f"dev-{i % 100}".encode(), values[i % len(values)], now) for i in range(count)))
    return sent, sent * len(values[0])


def _run(settings: Settings, name: str, topic: str, count: int, subject: str = "fridge") -> dict[str, Any]:
    stream_settings, stream = _stream_settings(settings, name, topic, max_offsets_per_trigger=max(1, count // BATCHES))
    if subject != "fridge":
        path = stream_settings.streams_file
        doc = json.loads(path.read_text())
        doc["streams"][0]["subject"] = subject
        path.write_text(json.dumps(doc))
    paths = stream_paths(stream_settings, stream)
    job = SparkProcess(stream_settings, "stream_ingest", [stream.name, "--available-now"], conf=stream_conf(stream),
                       log_path=settings.state_dir / "logs" / f"{name}.log")
    try:
        wall = job.wait(timeout=RUN_TIMEOUT, label=f"{name:28}", tick=checkpoint_tick(paths.checkpoint))
    finally:
        job.stop()
    batches = batch_seconds(paths.checkpoint)
    steady = batches[1:] or batches
    seconds = sum(b["seconds"] for b in steady)
    rows = row_count(stream_settings, stream.name)
    return {"name": name, "master": settings.spark_master, "wall_seconds": round(wall, 1), "batches": batches,
            "steady_rate": round(sum(b["rows"] for b in steady) / seconds, 1) if seconds else None,
            "rows": rows, "ok": rows == count}


def _line(result: dict[str, Any], extra: str = "") -> None:
    verdict = "ok" if result["ok"] else "MISSING ROWS"
    print(f"  {result['name']:28} {result['steady_rate'] or 0:>9,.0f} rec/s steady | "
          f"wall {result['wall_seconds']:6.1f}s | {result['rows']:,} rows {verdict} {extra}", flush=True)


def main(*, records: int | None = None, rounds: int = ROUNDS) -> int:
    count = records or RECORDS
    print(f"scale benchmark: {count:,} fridge records; a local cluster (3 brokers, Spark master + 2 workers)",
          flush=True)
    out: dict[str, Any] = {"records": count, "cluster_vs_local": [], "partitions": [], "sizes": []}
    with terminate_as_exit(), bench_cluster() as cluster, tempfile.TemporaryDirectory() as schemas:
        # the payload subject lives in a registry of its own, beside a copy of the fridge subject
        import shutil

        shutil.copytree(cluster.schemas_dir, Path(schemas) / "schemas")
        cluster = cluster.with_overrides(schemas_dir=Path(schemas) / "schemas")
        local = cluster.with_overrides(spark_master="local[2]")
        topic = "scale-fridge-4"
        _preload_fridge(cluster, topic, 4, count)
        for round_no in range(1, rounds + 1):
            order = [("cluster", cluster), ("local", local)]
            order = order if round_no % 2 else order[::-1]
            for label, settings in order:
                result = _run(settings, f"scale_{label}_r{round_no}", topic, count)
                result["where"] = label
                out["cluster_vs_local"].append(result)
                _line(result)
        rate = {w: statistics.median(r["steady_rate"] for r in out["cluster_vs_local"] if r["where"] == w)
                for w in ("cluster", "local")}
        out["cluster_over_local"] = round(rate["cluster"] / rate["local"], 3)
        print(f"  cluster / local[2]: {out['cluster_over_local']:.2f}x (median steady rates "
              f"{rate['cluster']:,.0f} vs {rate['local']:,.0f} rec/s)", flush=True)
        for partitions in PARTITIONS:
            topic = topic if partitions == 4 else f"scale-fridge-{partitions}"
            if partitions != 4:
                _preload_fridge(cluster, topic, partitions, count)
            result = _run(cluster, f"scale_partitions_{partitions}", topic, count)
            result["partitions"] = partitions
            out["partitions"].append(result)
            _line(result)
        for label, chars, n in SIZES:
            if chars == 0:
                result = dict(next(r for r in out["partitions"] if r["partitions"] == 4), name="scale_size_fridge")
                value_bytes = round(_fridge_value_bytes(cluster) * count)
                n = count
            else:
                sent, value_bytes = _preload_payload(cluster, f"scale-payload-{chars}", chars, n)
                result = _run(cluster, f"scale_size_{chars}", f"scale-payload-{chars}", sent, subject="bench-payload")
            result.update(size=label, record_bytes=round(value_bytes / n),
                          mb_per_s=round((result["steady_rate"] or 0) * value_bytes / n / 1e6, 2))
            out["sizes"].append(result)
            _line(result, f"| {result['mb_per_s']:.1f} MB/s")
    ok = all(r["ok"] for key in ("cluster_vs_local", "partitions", "sizes") for r in out[key])
    target = results_dir() / "scale.json"
    target.write_text(json.dumps(out, indent=1, default=str))
    png = plot(out, target.with_suffix(".png"))
    print(f"  figures: {target}  plot: {png}", flush=True)
    return 0 if ok else 1


def plot(out: dict[str, Any], path: Path) -> Path:
    """Rows/s against partitions, and records/s and MB/s against record size."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    parts = out["partitions"]
    left.plot([r["partitions"] for r in parts], [r["steady_rate"] for r in parts], marker="o")
    left.set_xlabel("topic partitions")
    left.set_ylabel("records/s (steady)")
    left.set_xticks([r["partitions"] for r in parts])
    left.set_ylim(bottom=0)
    left.set_title(f"partitions (cluster / local[2] = {out['cluster_over_local']:.2f}x)")
    sizes = out["sizes"]
    labels = [r["size"] for r in sizes]
    right.bar(labels, [r["steady_rate"] for r in sizes], color="#4c6ef5")
    right.set_ylabel("records/s (steady)")
    twin = right.twinx()
    twin.plot(labels, [r["mb_per_s"] for r in sizes], color="#c92a2a", marker="o")
    twin.set_ylabel("MB/s", color="#c92a2a")
    right.set_title("record size")
    fig.suptitle("kafkalake ingest on a local cluster (3 brokers, Spark master + 2 workers)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
