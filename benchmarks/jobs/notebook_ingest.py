"""spark-submit entry point: the notebook's single-schema way of landing Kafka Avro records (benchmark baseline).

    notebook_ingest.py --topic T --schema-file S.avsc --path OUT --checkpoint CKPT [--kafka-option K=V ...]
                       [--landing-layout]

One ``from_avro`` with ONE schema for every record (no routing by schema id, no quarantine,
no Kafka coordinates) -> Parquet file sink, trigger availableNow. Unpartitioned, as the
notebook writes it; ``--landing-layout`` partitions it like kafkalake's landing sink
(zone/dt/hour of the Kafka timestamp), so only the decode and the table's columns differ. It decodes
records of any other writer version wrongly (PERMISSIVE: as all-null rows; with from_avro's
default mode, FAILFAST, such a record fails the query), so it is only a cost floor
for ``benchmarks/ingest_bench.py``, never a way to ingest.

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
    from pyspark.sql import Column, DataFrame


def _decoded(schema_json: str) -> Column:
    """The notebook's decode: the body after the Confluent header, read with ONE schema."""
    from pyspark.sql import functions as F
    from pyspark.sql.avro.functions import from_avro

    return from_avro(F.expr("substring(value, 6)"), schema_json, {"mode": "PERMISSIVE"}).alias("json_col")


def notebook_transform(raw: DataFrame, schema_json: str) -> DataFrame:
    """Kafka rows -> the schema's fields, decoded with one schema (Confluent header skipped)."""
    return raw.select(_decoded(schema_json)).select("json_col.*")


def notebook_landing(raw: DataFrame, schema_json: str) -> DataFrame:
    """:func:`notebook_transform` plus the landing sink's partition columns (``zone``, ``dt``, ``hour``)."""
    from pyspark.sql import functions as F

    from kafkalake.stream.decode import LANDING, hour_columns

    decoded = raw.select(_decoded(schema_json), "timestamp")
    return decoded.select("json_col.*", F.lit(LANDING).alias("zone"), *hour_columns("timestamp", date=True))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--topic", required=True, help="Kafka topic to read from the earliest offset")
    parser.add_argument("--schema-file", required=True, type=Path, help="the one Avro schema every record is read with")
    parser.add_argument("--path", required=True, help="Parquet output folder")
    parser.add_argument("--checkpoint", required=True, help="checkpoint folder")
    parser.add_argument("--max-offsets-per-trigger", type=int, default=None, help="records per micro-batch")
    parser.add_argument("--kafka-option", action="append", default=[], metavar="KEY=VALUE",
                        help="a Kafka source option (e.g. kafka.max.poll.records=20000); repeatable")
    parser.add_argument("--landing-layout", action="store_true",
                        help="partition by zone/dt/hour like kafkalake's landing sink (default: unpartitioned)")
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
        .options(**options)
    )
    if args.max_offsets_per_trigger:
        raw = raw.option("maxOffsetsPerTrigger", args.max_offsets_per_trigger)
    raw = raw.load()
    schema_json = args.schema_file.read_text()
    if args.landing_layout:
        from kafkalake.stream.decode import PARTITION_COLUMNS

        writer = notebook_landing(raw, schema_json).writeStream.partitionBy(*PARTITION_COLUMNS)
    else:
        writer = notebook_transform(raw, schema_json).writeStream
    query = (
        writer.format("parquet")
        .outputMode("append")
        .option("path", args.path)
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
