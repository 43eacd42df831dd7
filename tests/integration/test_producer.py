"""The fleet producer against the real broker: nothing lost, every version decodable."""

from __future__ import annotations

import uuid
from collections import Counter, defaultdict

import pytest

from kafkalake.config import Settings
from kafkalake.kafka.topics import topic_config
from kafkalake.schema.registry import Registry
from kafkalake.wire.decoder import Decoder
from kafkalake.wire.framing import DecodeError
from tests.conftest import consume_all, make_settings, run_cli

pytestmark = pytest.mark.integration


def test_100k_fleet_records_round_trip_with_the_v2_reader(kafka: Settings) -> None:
    topic = f"fleet-{uuid.uuid4().hex[:8]}"
    created = run_cli(kafka, "topic", "create", topic, "--partitions", "2")
    assert created.returncode == 0, created.stderr
    assert topic_config(kafka.bootstrap_servers, topic)["message.timestamp.type"] == "LogAppendTime"

    result = run_cli(kafka, "produce", "--topic", topic, "--count", "100000", "--v1-fraction", "0.3",
                     "--devices", "50", timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "delivered 100,000" in result.stdout
    assert "rec/s" in result.stderr  # progress with the live rate

    messages = consume_all(kafka, topic, 100_000)
    assert len(messages) == 100_000
    assert len({(p, o) for _k, _v, p, o in messages}) == 100_000

    decoder = Decoder(Registry(kafka.schemas_dir), "fridge")
    by_schema = Counter()
    last_sendtime: dict[bytes, int] = defaultdict(int)
    for key, value, _partition, _offset in sorted(messages, key=lambda m: (m[2], m[3])):
        decoded = decoder.decode_message(value)
        by_schema[decoded.schema_id] += 1
        record = decoded.record
        assert record["name"].encode() == key
        assert set(record) == {"name", "action", "sendtime", "temperature"}
        if decoded.schema_id == 1:
            assert record["temperature"] is None
        else:
            assert isinstance(record["temperature"], float)
        assert record["sendtime"] >= last_sendtime[key]  # each device's records in order
        last_sendtime[key] = record["sendtime"]
    assert by_schema == {1: 30_000, 2: 70_000}
    assert len(last_sendtime) == 50


def test_injected_garbage_arrives_and_is_refused_by_reason(kafka: Settings) -> None:
    topic = f"garbage-{uuid.uuid4().hex[:8]}"
    assert run_cli(kafka, "topic", "create", topic).returncode == 0
    result = run_cli(kafka, "produce", "--topic", topic, "--count", "7000", "--inject-garbage", "0.05",
                     "--workers", "1", timeout=300)
    assert result.returncode == 0, result.stderr
    decoder = Decoder(Registry(kafka.schemas_dir), "fridge")
    reasons = Counter()
    good = 0
    for _key, value, _p, _o in consume_all(kafka, topic, 7_368):
        try:
            decoder.decode(value)
            good += 1
        except DecodeError as exc:
            reasons[exc.reason.value] += 1
    assert good == 7_000
    assert set(reasons) == {"EMPTY", "SHORT_HEADER", "BAD_MAGIC", "UNKNOWN_SCHEMA_ID", "TRUNCATED", "CORRUPT",
                            "TRAILING_BYTES"}
    assert sum(reasons.values()) == 368


def test_undelivered_records_fail_the_run_with_the_count(tmp_path) -> None:
    dead = make_settings(tmp_path / "state")  # nothing listens on its Kafka port
    result = run_cli(dead, "produce", "--topic", "nowhere", "--count", "500", "--timeout", "3", "--workers", "1",
                     timeout=120)
    assert result.returncode != 0
    lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert lines and "500 of 500 records were not delivered to 'nowhere'" in lines[0], result.stderr
