"""spark-submit with the Maven jars: Kafka source + to_avro/from_avro against the real broker."""

from __future__ import annotations

import json
import uuid

import pytest

from kafkalake.config import Settings
from kafkalake.errors import ExitCode
from kafkalake.kafka.topics import create_topic
from kafkalake.spark.submit import run_job

pytestmark = pytest.mark.integration


def _result(stdout: str) -> dict:
    lines = [line for line in stdout.splitlines() if line.startswith("RESULT ")]
    assert lines, f"job printed no RESULT line:\n{stdout[-2000:]}"
    return json.loads(lines[-1].removeprefix("RESULT "))


def test_spark_reads_kafka_and_roundtrips_avro(kafka: Settings) -> None:
    from confluent_kafka import Producer

    topic = f"spark-check-{uuid.uuid4().hex[:8]}"
    create_topic(kafka.bootstrap_servers, topic, partitions=2)
    producer = Producer({"bootstrap.servers": kafka.bootstrap_servers})
    for i in range(500):
        producer.produce(topic, key=f"k{i}", value=f"fridge-{i}")
    assert producer.flush(30) == 0

    result = run_job(kafka, "connector_check", ["--topic", topic, "--expect-rows", "500"], capture=True, timeout=300)
    assert result.returncode == 0, result.stderr[-4000:]
    report = _result(result.stdout)
    assert report == {
        "ok": True,
        "roundtrip_mismatches": 0,
        "rows": 500,
        "source": f"kafka:{topic}",
        "spark_version": "4.1.1",
    }


def test_wrong_row_count_fails_the_job(kafka: Settings) -> None:
    """The job's own check can fail: an empty topic is not the 7 rows we ask for."""
    topic = f"spark-empty-{uuid.uuid4().hex[:8]}"
    create_topic(kafka.bootstrap_servers, topic)
    result = run_job(kafka, "connector_check", ["--topic", topic, "--expect-rows", "7"], capture=True, timeout=300)
    assert result.returncode == ExitCode.CHECK_FAILED
    # spark-submit's PythonRunner merges the driver's stderr into its own stdout
    assert f"error: read 0 rows from kafka:{topic}, expected 7" in result.stdout
