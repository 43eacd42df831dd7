"""Producer throughput: kafkalake's producer vs the tutorial notebook's loop, same run.

Both send the same 500,000 v2 fridge records to the same local broker with the same
confluent-kafka settings; the clock covers encoding + produce + flush (delivery confirmed).

* notebook: a new ``avro.io.DatumWriter`` + ``BytesIO`` + ``BinaryEncoder`` per record, one
  ``produce()`` each (as in the notebook; its payload is unframed Avro).
* kafkalake: :class:`kafkalake.producer.FramedEncoder` (fastavro, pre-parsed schema, Confluent
  framing) through :func:`kafkalake.producer.produce_parallel` with the CLI's default worker
  count (one per core: encoding is CPU-bound Python), batched ``produce_batch`` calls.

Goal: >= 15x the notebook loop's rate and >= 150,000 records/s on 2 cores.
"""

from __future__ import annotations

import functools
import io
import json
import os
import platform
import time
from collections.abc import Iterator
from typing import Any

from benchmarks.platform import bench_kafka, results_dir
from kafkalake.config import get_settings
from kafkalake.kafka.topics import create_topic
from kafkalake.produce.fleet import FleetMessage
from kafkalake.produce.producer import make_producer, produce_parallel
from kafkalake.schema.registry import Registry
from kafkalake.wire.encoder import FramedEncoder

RECORDS = 500_000
ROUNDS = 2
GOAL_RATIO = 15.0
GOAL_RATE = 150_000.0


def _records(count: int) -> list[dict[str, Any]]:
    import random

    rng = random.Random(42)
    actions = ("open", "close", "defrost", "door_alarm", "eco_mode")
    return [
        {
            "name": f"fridge-{i % 1000:05d}",
            "action": actions[rng.randrange(5)],
            "sendtime": 1_795_000_000 + i // 1000,
            "temperature": round(rng.uniform(-4.0, 8.0), 2),
        }
        for i in range(count)
    ]


def _notebook_run(settings: Any, topic: str, records: list[dict[str, Any]], schema_json: str) -> dict[str, float]:
    """The notebook's loop, with the same producer settings as kafkalake's."""
    import avro.io
    import avro.schema

    create_topic(settings.bootstrap_servers, topic, partitions=2)
    producer = make_producer(settings.bootstrap_servers)
    failed = []

    def on_delivery(err: object, _msg: object) -> None:
        if err is not None:
            failed.append(err)

    schema = avro.schema.parse(schema_json)
    started = time.perf_counter()
    for record in records:
        writer = avro.io.DatumWriter(schema)
        bytes_writer = io.BytesIO()
        encoder = avro.io.BinaryEncoder(bytes_writer)
        writer.write(record, encoder)
        raw_bytes = bytes_writer.getvalue()
        while True:
            try:
                producer.produce(topic, raw_bytes, record["name"].encode(), on_delivery=on_delivery)
                break
            except BufferError:
                producer.poll(0.05)
    undelivered = producer.flush(120)
    seconds = time.perf_counter() - started
    assert undelivered == 0 and not failed, (undelivered, failed[:1])
    return {"records": len(records), "seconds": round(seconds, 3), "rate": round(len(records) / seconds, 1)}


def _kafkalake_messages(
    records: list[dict[str, Any]], encoder: FramedEncoder, shard: int = 0, shards: int = 1
) -> Iterator[FleetMessage]:
    """The shard's records (by device, as `kafkalake produce` shards), encoded and framed."""
    encode = encoder.encode
    schema_id = encoder.schema_id
    for i in range(shard, len(records), shards) if shards > 1 else range(len(records)):
        record = records[i]
        yield (record["name"].encode(), encode(record), schema_id, None)


def _run(settings: Any, topic: str, shard_messages: Any, count: int, workers: int) -> dict[str, float]:
    create_topic(settings.bootstrap_servers, topic, partitions=2)
    report = produce_parallel(
        bootstrap_servers=settings.bootstrap_servers, topic=topic, shard_messages=shard_messages, workers=workers
    )
    report.raise_for_loss(topic)
    assert report.delivered == count, (report.delivered, count)
    return {"records": report.produced, "seconds": round(report.seconds, 3), "rate": round(report.rate, 1)}


def _warm_up(settings: Any) -> None:
    """A fresh broker loads its coordinators lazily; the first idempotent producer waits."""
    create_topic(settings.bootstrap_servers, "bench-warmup", partitions=2)
    producer = make_producer(settings.bootstrap_servers)
    for i in range(1000):
        producer.produce("bench-warmup", b"x" * 40, str(i % 10).encode())
    assert producer.flush(60) == 0


def main(*, records: int | None = None, rounds: int = ROUNDS) -> int:
    count = records or RECORDS
    registry = Registry(get_settings().schemas_dir)
    v2 = registry.latest("fridge")
    encoder = FramedEncoder.for_version(v2)
    data = _records(count)
    workers = min(4, os.cpu_count() or 1)  # what `kafkalake produce` uses by default
    print(f"producer benchmark: {count:,} v2 records, {rounds} rounds, notebook loop vs kafkalake", flush=True)
    runs: dict[str, list[dict[str, float]]] = {"notebook": [], "kafkalake": []}
    with bench_kafka() as settings:
        _warm_up(settings)
        for round_no in range(rounds):
            for name in ("kafkalake", "notebook"):
                topic = f"bench-{name}-{round_no}-{int(time.time())}"
                if name == "kafkalake":
                    make = functools.partial(_kafkalake_messages, data, encoder)
                    result = _run(settings, topic, make, count, workers)
                else:  # the notebook's loop: one process, one produce() per record
                    result = _notebook_run(settings, topic, data, v2.schema_json)
                runs[name].append(result)
                print(f"  round {round_no + 1} {name:10} {result['rate']:>12,.0f} rec/s ({result['seconds']:.1f}s)",
                      flush=True)
    best = {name: max(r["rate"] for r in rs) for name, rs in runs.items()}
    ratio = best["kafkalake"] / best["notebook"]
    verdict = ratio >= GOAL_RATIO and best["kafkalake"] >= GOAL_RATE
    summary = {
        "benchmark": "producer",
        "records": count,
        "rounds": runs,
        "best_rate": best,
        "ratio": round(ratio, 2),
        "goal": {"ratio": GOAL_RATIO, "rate": GOAL_RATE, "met": verdict},
        "kafkalake_workers": workers,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    out = results_dir() / "producer.json"
    out.write_text(json.dumps(summary, indent=2) + "\n")
    print(
        f"notebook loop {best['notebook']:,.0f} rec/s | kafkalake {best['kafkalake']:,.0f} rec/s | "
        f"ratio {ratio:.1f}x (goal >= {GOAL_RATIO:.0f}x: {'met' if ratio >= GOAL_RATIO else 'NOT met'}; "
        f"goal >= {GOAL_RATE:,.0f} rec/s: {'met' if best['kafkalake'] >= GOAL_RATE else 'NOT met'}) -> {out}",
        flush=True,
    )
    return 0
