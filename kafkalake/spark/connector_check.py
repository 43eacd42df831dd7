"""Prove the Spark connectors line up: Kafka source + to_avro/from_avro round trip.

Run by ``spark_jobs/connector_check.py`` (from the CLI, tests and the platform-check DAG). A
wrong jar version fails here loudly (NoSuchMethodError, AVRO_NOT_LOADED..., KAFKA_DATA_SOURCE
NOT_ENABLED) instead of in the middle of a stream.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pyspark.sql import DataFrame


#: Writer and reader schema of the round trip: the Kafka row as an Avro record.
ROUNDTRIP_SCHEMA = json.dumps(
    {
        "type": "record",
        "name": "KafkaRow",
        "namespace": "kafkalake.check",
        "fields": [
            {"name": "key", "type": ["null", "string"], "default": None},
            {"name": "value", "type": ["null", "string"], "default": None},
            {"name": "partition", "type": ["null", "int"], "default": None},
            {"name": "offset", "type": ["null", "long"], "default": None},
        ],
    }
)


@dataclass(frozen=True)
class CheckResult:
    rows: int
    roundtrip_mismatches: int
    spark_version: str
    source: str

    @property
    def ok(self) -> bool:
        return self.roundtrip_mismatches == 0

    def to_json(self) -> str:
        return json.dumps({**asdict(self), "ok": self.ok}, sort_keys=True)


def avro_roundtrip(rows: DataFrame) -> DataFrame:
    """rows(key, value, partition, offset) -> the same rows after to_avro then from_avro."""
    from pyspark.sql import functions as F
    from pyspark.sql.avro.functions import from_avro, to_avro

    encoded = rows.select(to_avro(F.struct(*rows.columns), ROUNDTRIP_SCHEMA).alias("payload"))
    return encoded.select(from_avro("payload", ROUNDTRIP_SCHEMA, {"mode": "FAILFAST"}).alias("r")).select("r.*")


def kafka_rows(raw: DataFrame) -> DataFrame:
    """Kafka source rows -> (key, value, partition, offset) with string key/value."""
    from pyspark.sql import functions as F

    return raw.select(
        F.col("key").cast("string").alias("key"),
        F.col("value").cast("string").alias("value"),
        F.col("partition").cast("int").alias("partition"),
        F.col("offset").cast("long").alias("offset"),
    )


def run_check(rows: DataFrame, *, source: str) -> CheckResult:
    rows = rows.cache()
    back = avro_roundtrip(rows)
    mismatches = rows.exceptAll(back).count() + back.exceptAll(rows).count()
    return CheckResult(
        rows=rows.count(),
        roundtrip_mismatches=mismatches,
        spark_version=rows.sparkSession.version,
        source=source,
    )
