"""Spark-side helpers shared by the jobs in spark_jobs/ (imported only inside Spark drivers).

pyspark is imported lazily so that DAG files and the CLI can import kafkalake cheaply.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession


def get_session(app_name: str) -> SparkSession:
    """The session of a job started by spark-submit (master, jars and conf come from there)."""
    from pyspark.sql import SparkSession

    spark = SparkSession.builder.appName(app_name).getOrCreate()
    spark.sparkContext.setLogLevel("WARN")
    return spark


def read_topic_batch(spark: SparkSession, *, bootstrap_servers: str, topic: str) -> DataFrame:
    """All records currently in a topic, as a batch DataFrame (Kafka source columns)."""
    return (
        spark.read.format("kafka")
        .option("kafka.bootstrap.servers", bootstrap_servers)
        .option("subscribe", topic)
        .option("startingOffsets", "earliest")
        .option("endingOffsets", "latest")
        .load()
    )
