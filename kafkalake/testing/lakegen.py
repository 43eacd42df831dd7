"""Generate a landing sink exactly as Spark's file sink lays it out — without Kafka or Spark.

Benchmarks need thousands of small files and tests need closed past hours; streaming them
through Kafka would take minutes (and LogAppendTime only makes *current* hours). The files
are Parquet with the landing schema of the fridge subject (reader v2), under
``zone=landing/dt=…/hour=…``, committed by a ``_spark_metadata`` log in Spark's own format
(a ``v1`` line, then one JSON line per file) — Spark, :mod:`kafkalake.lake.landing` and the read
path treat them like any stream's output.
"""

from __future__ import annotations

import json
import random
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC
from pathlib import Path
from typing import TYPE_CHECKING

from kafkalake.lake.tables import Hour

if TYPE_CHECKING:
    import pyarrow as pa

#: Spark's file sink compacts its log every 10 batches (``<9>.compact``); stay below.
MAX_LOG_BATCHES = 9


@dataclass(frozen=True)
class Generated:
    files: int
    rows: int
    bytes: int


def _fridge_table(rows: int, hour: Hour, first_offset: int, rng: random.Random, partition: int) -> pa.Table:
    import numpy as np
    import pyarrow as pa

    start_us = int(hour.start.timestamp() * 1_000_000)
    v1 = rng.random(rows) < 0.3
    temperature = np.round(rng.normal(4.0, 1.5, rows), 2)
    names = np.char.add("fridge-", rng.integers(0, 5000, rows).astype(str))
    actions = np.array(["open", "close", "defrost", "alarm"])[rng.integers(0, 4, rows)]
    stamps = np.sort(rng.integers(start_us, start_us + 3_600_000_000, rows))
    return pa.table({
        "name": pa.array(names, pa.string()),
        "action": pa.array(actions, pa.string()),
        "sendtime": pa.array((stamps // 1_000_000).astype(np.int32), pa.int32()),
        "temperature": pa.array(np.where(v1, np.nan, temperature), pa.float64(), mask=v1),
        "schema_id": pa.array(np.where(v1, 1, 2).astype(np.int32), pa.int32()),
        "schema_version": pa.array(np.where(v1, 1, 2).astype(np.int32), pa.int32()),
        "topic": pa.array(["fridge-events"] * rows, pa.string()),
        "partition": pa.array(np.full(rows, partition, np.int32), pa.int32()),
        "offset": pa.array(np.arange(first_offset, first_offset + rows, dtype=np.int64), pa.int64()),
        "timestamp": pa.array(stamps, pa.timestamp("us", tz="UTC")),
        "reason": pa.nulls(rows, pa.string()),
        "raw_key": pa.nulls(rows, pa.binary()),
        "raw_value": pa.nulls(rows, pa.binary()),
    })


def generate_landing(
    sink: Path,
    hours: list[Hour],
    *,
    files_per_hour: int,
    rows_per_file: int,
    seed: int = 7,
    batches: int = 3,
    progress: Callable[[int, int], None] | None = None,
) -> Generated:
    """Write ``files_per_hour`` Parquet files of ``rows_per_file`` fridge rows into each hour of
    a landing sink at ``sink`` and commit them in ``batches`` log files (appends to a sink this
    function made before; offsets continue)."""
    import numpy as np
    import pyarrow.parquet as pq

    rng = np.random.default_rng(seed)
    meta = sink / "_spark_metadata"
    meta.mkdir(parents=True, exist_ok=True)
    existing = sorted(int(p.name) for p in meta.iterdir() if p.name.isdigit())
    first_batch = existing[-1] + 1 if existing else 0
    if first_batch + batches > MAX_LOG_BATCHES:
        raise ValueError(f"{sink}: at most {MAX_LOG_BATCHES} generated log batches (Spark compacts the log at 10)")
    offset = sum(1 for _ in existing) * 10_000_000
    entries: list[list[str]] = [[] for _ in range(batches)]
    total_files = len(hours) * files_per_hour
    done = rows = size = 0
    for hour in hours:
        folder = sink / "zone=landing" / hour.folder
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(files_per_hour):
            table = _fridge_table(rows_per_file, hour, offset, rng, partition=i % 2)
            offset += rows_per_file
            path = folder / f"part-{i:05d}-{uuid.uuid4()}.c000.snappy.parquet"
            pq.write_table(table, path, compression="snappy")
            stat = path.stat()
            entries[done % batches].append(json.dumps({
                "path": path.resolve().as_uri(), "size": stat.st_size, "isDir": False,
                "modificationTime": int(stat.st_mtime * 1000), "blockReplication": 1,
                "blockSize": 33554432, "action": "add",
            }))
            done += 1
            rows += rows_per_file
            size += stat.st_size
            if progress:
                progress(done, total_files)
    for i, lines in enumerate(entries):
        (meta / str(first_batch + i)).write_text("\n".join(["v1", *lines]) + "\n")
    return Generated(done, rows, size)


def hours_before(now: float | None = None, count: int = 3, *, gap: int = 2) -> list[Hour]:
    """``count`` consecutive whole hours ending ``gap`` hours before now (all closed)."""
    from datetime import datetime, timedelta

    current = datetime.fromtimestamp(now or time.time(), UTC).replace(minute=0, second=0, microsecond=0)
    return [Hour.of(current - timedelta(hours=gap + count - 1 - i)) for i in range(count)]
