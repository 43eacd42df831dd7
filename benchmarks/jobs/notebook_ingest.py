"""spark-submit entry point: the notebook's single-schema way of ingesting Kafka Avro records (benchmark baseline).

    notebook_ingest.py --topic T --schema-file S.avsc --schema-id ID --schema-version N --checkpoint CKPT
                       (--table NAME | --path OUT) [--max-offsets-per-trigger N] [--kafka-option K=V ...]

One ``from_avro`` with ONE schema for every record: no routing by schema id, no check that the
body decoded, no quarantine. Each row gets the columns of kafkalake's stream table (the
schema's fields, then the Kafka key, headers and coordinates), with the one schema's id and
version for every row, so both jobs write the same columns. Trigger availableNow.

* ``--table NAME``: an Iceberg table of the platform's catalog made like a stream's table
  (:func:`kafkalake.catalog.iceberg.ensure_table`: the same table properties, format v3,
  partitioned by ``hours(timestamp)``), written by a ``foreachBatch`` append
  (``batch.writeTo(table).append()``, as the stream's sink commits; no commit marker).
* ``--path OUT``: a plain Parquet file sink, partitioned ``dt``/``hour`` of the Kafka timestamp
  (one folder per hour, as the Iceberg table's partitions).

It decodes records of any other writer version wrongly (PERMISSIVE: as all-null rows; with
from_avro's default mode, FAILFAST, such a record fails the query), so it is only a cost
floor for ``benchmarks/ingest_bench.py``, never a way to ingest.

At the end it prints one line ``NOTEBOOK_PROGRESS {json}`` with each batch's input rows and
``durationMs`` (where its time went, ``triggerExecution`` the whole), taken from
``query.recentProgress``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

_DAY_MICROS = 86_400_000_000
_HOUR_MICROS = 3_600_000_000


def notebook_rows(raw: DataFrame, schema_json: str, schema_id: int, schema_version: int) -> DataFrame:
    """Kafka rows -> the stream table's columns, every body decoded with the one schema."""
    from pyspark.sql import functions as F
    from pyspark.sql.avro.functions import from_avro

    from kafkalake.stream.decode import META_COLUMNS

    decoded = raw.select(
        from_avro(F.expr("substring(value, 6)"), schema_json, {"mode": "PERMISSIVE"}).alias("json_col"),
        "key", "headers", F.lit(schema_id).alias("schema_id"), F.lit(schema_version).alias("schema_version"),
        "topic", "partition", "offset", "timestamp",
    )
    return decoded.select("json_col.*", *META_COLUMNS)


def hour_partitions(rows: DataFrame) -> DataFrame:
    """``rows`` plus ``dt`` (a DATE) and ``hour`` of the Kafka timestamp, in UTC (epoch arithmetic)."""
    from pyspark.sql import functions as F

    micros = "unix_micros(`timestamp`)"
    micro_of_day = f"pmod({micros}, {_DAY_MICROS})"
    return rows.select(
        "*",
        F.expr(f"date_from_unix_date(cast(({micros} - {micro_of_day}) div {_DAY_MICROS} as int))").alias("dt"),
        F.expr(f"cast({micro_of_day} div {_HOUR_MICROS} as int)").alias("hour"),
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--topic", required=True, help="Kafka topic to read from the earliest offset")
    parser.add_argument("--schema-file", required=True, type=Path, help="the one Avro schema every record is read with")
    parser.add_argument("--schema-id", required=True, type=int, help="that schema's registry id (column schema_id)")
    parser.add_argument("--schema-version", required=True, type=int, help="its version (column schema_version)")
    parser.add_argument("--checkpoint", required=True, help="checkpoint folder")
    sink = parser.add_mutually_exclusive_group(required=True)
    sink.add_argument("--table", help="Iceberg table of the platform's catalog to append to (created if missing)")
    sink.add_argument("--path", help="Parquet file sink folder")
    parser.add_argument("--max-offsets-per-trigger", type=int, default=None, help="records per micro-batch")
    parser.add_argument("--kafka-option", action="append", default=[], metavar="KEY=VALUE",
                        help="a Kafka source option (e.g. kafka.max.poll.records=20000); repeatable")
    args = parser.parse_args(argv)
    malformed = [option for option in args.kafka_option if "=" not in option]
    if malformed:
        parser.error(f"--kafka-option takes KEY=VALUE, not {malformed[0]!r}")
    options = dict(option.split("=", 1) for option in args.kafka_option)

    from kafkalake.config import get_settings
    from kafkalake.spark.session import get_session

    settings = get_settings()
    spark = get_session("kafkalake-notebook-ingest")
    raw = (
        spark.readStream.format("kafka")
        .option("kafka.bootstrap.servers", settings.bootstrap_servers)
        .option("subscribe", args.topic)
        .option("startingOffsets", "earliest")
        .option("includeHeaders", "true")
        .options(**options)
    )
    if args.max_offsets_per_trigger:
        raw = raw.option("maxOffsetsPerTrigger", args.max_offsets_per_trigger)
    rows = notebook_rows(raw.load(), args.schema_file.read_text(), args.schema_id, args.schema_version)
    if args.table:
        from kafkalake.catalog.config import catalog_config
        from kafkalake.catalog.iceberg import TableSpec, ensure_table

        config = catalog_config(settings)
        ensure_table(spark, config, TableSpec(args.table, rows.schema, "parquet"))
        identifier = config.identifier(args.table)

        def append(batch: DataFrame, _batch_id: int) -> None:
            batch.writeTo(identifier).append()

        writer = rows.writeStream.foreachBatch(append)
    else:
        writer = (hour_partitions(rows).writeStream.partitionBy("dt", "hour").format("parquet")
                  .option("path", args.path))
    query = (
        writer.outputMode("append")
        .option("checkpointLocation", args.checkpoint)
        .trigger(availableNow=True)
        .start()
    )
    query.awaitTermination()
    batches = [
        {"batch_id": p["batchId"], "input_rows": p["numInputRows"], "durations_ms": dict(p["durationMs"])}
        for p in query.recentProgress
    ]
    summary = {
        "batches": batches,
        "input_rows": sum(b["input_rows"] for b in batches),
        "trigger_ms": sum(b["durations_ms"].get("triggerExecution", 0) for b in batches),
    }
    print("NOTEBOOK_PROGRESS " + json.dumps(summary), flush=True)
    spark.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
