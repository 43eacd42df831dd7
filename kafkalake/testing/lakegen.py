"""Stream tables with many small files per hour, made in seconds: for tests and benchmarks.

A stream writes one file per micro-batch, Kafka partition and hour; compaction exists for
that. Streaming a backlog through Kafka to get such a table takes minutes (and LogAppendTime
only makes *current* hours), so :func:`generate_table` builds the Kafka rows a stream would
read — Confluent-framed Avro values of the fridge fleet (30 % v1 writers), optionally some
malformed ones, timestamps spread over past hours — in Spark, runs them through the stream's
own decode (docs/architecture.md: One decode path) and appends them to the stream's Iceberg
tables, created with the stream's own table specs. Each table gets one commit of
``files_per_hour`` files in every hour: the same columns, the same partitioning, the same
file formats as a stream's output, so compaction cannot tell them apart.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC
from typing import TYPE_CHECKING

from kafkalake.lake.tables import Hour

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

    from kafkalake.config import Settings

#: distinct encoded records per generated table; the rows cycle through them (offsets and
#: timestamps stay unique), so a million-row table costs no more Python than a small one
POOL_SIZE = 2_000
#: share of malformed records (every kind of :data:`kafkalake.produce.fleet.GARBAGE_KINDS`) with ``garbage``
GARBAGE_FRACTION = 0.02


@dataclass(frozen=True)
class Generated:
    """What :func:`generate_table` appended: rows per table (good rows, quarantined rows)."""

    tables: dict[str, int]
    files_per_hour: int
    hours: list[Hour]


def _kafka_rows(spark: SparkSession, settings: Settings, stream_name: str, hours: list[Hour], rows_per_hour: int,
                *, garbage: bool, seed: int, first_offset: int) -> DataFrame:
    """Kafka source rows (key, value, topic, partition, offset, timestamp) over ``hours``."""
    from pyspark.sql import functions as F

    from kafkalake.produce.fleet import fleet_from_registry
    from kafkalake.schema.registry import Registry
    from kafkalake.stream.config import get_stream

    stream = get_stream(settings, stream_name)
    fleet = fleet_from_registry(Registry(settings.schemas_dir), subject=stream.subject, devices=50,
                                v1_fraction=0.3, garbage_fraction=GARBAGE_FRACTION if garbage else 0.0, seed=seed)
    pool = [(key, bytes(value)) for key, value, _sid, _kind in fleet.messages(POOL_SIZE)]
    values = spark.createDataFrame([(i, k, v) for i, (k, v) in enumerate(pool)], "i INT, key BINARY, value BINARY")
    starts = F.array(*[F.lit(int(h.start.timestamp())) for h in hours])
    step = 3600.0 / rows_per_hour
    ids = spark.range(len(hours) * rows_per_hour).select(
        (F.col("id") % len(pool)).cast("int").alias("i"),
        (F.col("id") % 2).cast("int").alias("partition"),
        (F.lit(first_offset) + F.col("id")).alias("offset"),
        F.timestamp_seconds(F.element_at(starts, (F.col("id") / rows_per_hour).cast("int") + 1)
                            + (F.col("id") % rows_per_hour) * F.lit(step)).alias("timestamp"),
    )
    return ids.join(F.broadcast(values), "i").select(
        "key", "value", F.lit(stream.topics[0]).alias("topic"), "partition", "offset", "timestamp")


def generate_table(
    spark: SparkSession,
    settings: Settings,
    stream_name: str,
    hours: list[Hour],
    *,
    files_per_hour: int,
    rows_per_hour: int,
    garbage: bool = False,
    seed: int = 7,
    first_offset: int = 0,
) -> Generated:
    """Append ``rows_per_hour`` fridge records per hour to the tables of ``stream_name`` (its
    data tables, and its quarantine table when ``garbage``), ``files_per_hour`` files per hour
    and table, one commit per table. ``spark`` must have the platform's catalog (its conf)."""
    from kafkalake.catalog.config import catalog_config
    from kafkalake.catalog.iceberg import ensure_table
    from kafkalake.schema.registry import Registry
    from kafkalake.stream.config import get_stream
    from kafkalake.stream.decode import decode, decode_plan, quarantine_rows, table_rows
    from kafkalake.stream.sink import table_specs

    stream = get_stream(settings, stream_name)
    config = catalog_config(settings)
    plan = decode_plan(Registry(settings.schemas_dir), stream.subject)
    raw = _kafka_rows(spark, settings, stream_name, hours, rows_per_hour, garbage=garbage, seed=seed,
                      first_offset=first_offset)
    decoded = decode(raw, plan).cache()
    try:
        for spec in table_specs(stream, plan, decoded):
            ensure_table(spark, config, spec)
        counts: dict[str, int] = {}
        outputs = [(name, table_rows(decoded, plan)) for name in stream.tables.values()]
        if garbage:
            outputs.append((stream.quarantine_table, quarantine_rows(decoded)))
        for name, rows in outputs:
            # round-robin: every task holds rows of every hour and writes one file per hour
            rows.repartition(files_per_hour).writeTo(config.identifier(name)).append()
            counts[name] = rows.count()
    finally:
        decoded.unpersist()
    return Generated(counts, files_per_hour, list(hours))


def hours_before(now: float | None = None, count: int = 3, *, gap: int = 2) -> list[Hour]:
    """``count`` consecutive whole hours ending ``gap`` hours before now (all closed)."""
    from datetime import datetime, timedelta

    current = datetime.fromtimestamp(now or time.time(), UTC).replace(minute=0, second=0, microsecond=0)
    return [Hour.of(current - timedelta(hours=gap + count - 1 - i)) for i in range(count)]
