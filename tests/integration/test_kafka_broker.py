"""The local KRaft broker: real produce/consume, topic settings, status and restart."""

from __future__ import annotations

import uuid

import pytest

from kafkalake.config import Settings
from kafkalake.kafka.topics import create_topic, topic_config
from kafkalake.platform import local_kafka as kafka_local
from tests.conftest import consume_all

pytestmark = pytest.mark.integration


def test_produce_and_consume_1000_messages(kafka: Settings) -> None:
    from confluent_kafka import KafkaError, Message, Producer

    topic = f"roundtrip-{uuid.uuid4().hex[:8]}"
    assert create_topic(kafka.bootstrap_servers, topic, partitions=2) is True
    assert create_topic(kafka.bootstrap_servers, topic, partitions=2) is False  # idempotent

    producer = Producer({"bootstrap.servers": kafka.bootstrap_servers, "enable.idempotence": True, "acks": "all"})
    failures: list[str] = []

    def on_delivery(err: KafkaError | None, _msg: Message) -> None:
        if err is not None:
            failures.append(str(err))

    sent = {f"key-{i}": f"value-{i}" for i in range(1000)}
    for key, value in sent.items():
        producer.produce(topic, key=key, value=value, on_delivery=on_delivery)
    assert producer.flush(30) == 0
    assert failures == []

    received = {key.decode(): value.decode() for key, value, _p, _o in consume_all(kafka, topic, len(sent))}
    assert received == sent


def test_topics_use_log_append_time(kafka: Settings) -> None:
    topic = f"ts-{uuid.uuid4().hex[:8]}"
    create_topic(kafka.bootstrap_servers, topic)
    assert topic_config(kafka.bootstrap_servers, topic)["message.timestamp.type"] == "LogAppendTime"


def test_status_reports_up_and_start_is_idempotent(kafka: Settings) -> None:
    before = kafka_local.status(kafka)
    assert before.state == "up" and before.pid is not None
    again = kafka_local.start(kafka)  # already running: no second broker
    assert again.pid == before.pid
