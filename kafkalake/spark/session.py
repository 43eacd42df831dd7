"""Spark-side helpers shared by the jobs in spark_jobs/ (imported only inside Spark drivers).

pyspark is imported lazily so that DAG files and the CLI can import kafkalake cheaply.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, DataFrameReader, SparkSession
    from pyspark.sql.streaming import DataStreamReader
    Reader = TypeVar("Reader", DataFrameReader, DataStreamReader)


#: Consumer settings of every kafkalake Kafka read (stream, backfill, batch reads). After each
#: poll, Spark's Kafka reader asks the broker for the partition's earliest and latest offsets
#: (two round trips), and a poll returns at most ``max.poll.records`` (Kafka's default: 500):
#: 400 round trips per 100k records. With 20,000, a poll returns what a fetch response holds
#: (1 MiB, ~13k fridge records). Measured on the ingest job in fresh JVMs (local[2], 200k
#: records per batch): steady 120k -> 134-180k rec/s.
#:
#: ``fetch.max.wait.ms``: after a poll that returned records, the consumer already sends the
#: next fetch. At the end of the partition the broker parks it for up to this long (Kafka's
#: default: 500 ms), and the broker answers a connection's requests in order, so the offset
#: lookup that follows waits behind it. Every batch that reads up to the log end (each batch of
#: a caught-up stream, the last one of an ``--available-now`` run or a backfill) paid ~0.45 s
#: per task for it. A Spark task only reads offsets that exist, so it never needs the wait.
KAFKA_READ_OPTIONS: dict[str, str] = {"kafka.max.poll.records": "20000", "kafka.fetch.max.wait.ms": "10"}


def kafka_reader(reader: Reader, bootstrap_servers: str, topics: Iterable[str]) -> Reader:
    """``spark.read`` or ``spark.readStream`` on Kafka: the broker, the topics and
    :data:`KAFKA_READ_OPTIONS`. Every kafkalake Kafka read starts here."""
    return (
        reader.format("kafka")
        .option("kafka.bootstrap.servers", bootstrap_servers)
        .options(**KAFKA_READ_OPTIONS)
        .option("subscribe", ",".join(topics))
    )


def get_session(app_name: str) -> SparkSession:
    """The session of a job started by spark-submit (master, jars and conf come from there)."""
    from pyspark.sql import SparkSession

    spark = SparkSession.builder.appName(app_name).getOrCreate()
    spark.sparkContext.setLogLevel("WARN")
    return spark


def read_topic_batch(spark: SparkSession, *, bootstrap_servers: str, topic: str) -> DataFrame:
    """All records currently in a topic, as a batch DataFrame (Kafka source columns)."""
    return (
        kafka_reader(spark.read, bootstrap_servers, [topic])
        .option("startingOffsets", "earliest")
        .option("endingOffsets", "latest")
        .load()
    )
