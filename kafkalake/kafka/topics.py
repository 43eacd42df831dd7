"""Kafka topics through the admin client.

Topics are created with ``message.timestamp.type=LogAppendTime`` (docs/architecture.md: Deterministic partitions):
the broker stamps each record, so the hour a record lands in is decided once, by Kafka, and
replay or backfill puts it in the same partition of the lake.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

from kafkalake.errors import KafkalakeError

if TYPE_CHECKING:
    from confluent_kafka.admin import AdminClient

log = logging.getLogger(__name__)

TOPIC_DEFAULTS: dict[str, str] = {"message.timestamp.type": "LogAppendTime"}


class TopicError(KafkalakeError):
    """A topic could not be created or described."""


_LEGAL = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")


def validate_topic_name(name: str) -> str:
    """Kafka's own rule (1-249 of [a-zA-Z0-9._-], not . or ..), checked before any I/O."""
    if not name or len(name) > 249 or name in (".", "..") or not set(name) <= _LEGAL:
        raise TopicError(
            f"{name!r} is not a valid Kafka topic name: use 1-249 characters of a-z A-Z 0-9 . _ -"
        )
    return name


def admin_client(bootstrap_servers: str):  # -> confluent_kafka.admin.AdminClient
    from confluent_kafka.admin import AdminClient

    return AdminClient({"bootstrap.servers": bootstrap_servers, "logger": logging.getLogger("kafkalake.kafka.admin")})


def create_topic(
    bootstrap_servers: str,
    name: str,
    *,
    partitions: int = 2,
    replication_factor: int = 1,
    config: dict[str, str] | None = None,
    exist_ok: bool = True,
    timeout: float = 30.0,
) -> bool:
    """Create a topic; True if created, False if it existed (and ``exist_ok``)."""
    from confluent_kafka import KafkaError, KafkaException
    from confluent_kafka.admin import NewTopic

    topic = NewTopic(
        name,
        num_partitions=partitions,
        replication_factor=replication_factor,
        config={**TOPIC_DEFAULTS, **(config or {})},
    )
    admin = admin_client(bootstrap_servers)  # keep a reference: the future dies with its client
    future = admin.create_topics([topic], operation_timeout=timeout)[name]
    try:
        future.result(timeout=timeout)
    except KafkaException as exc:
        err = exc.args[0]
        if err.code() == KafkaError.TOPIC_ALREADY_EXISTS and exist_ok:
            return False
        raise TopicError(f"cannot create topic {name!r} on {bootstrap_servers}: {err.str()}") from None
    return True


def topic_config(bootstrap_servers: str, name: str, timeout: float = 30.0) -> dict[str, str]:
    from confluent_kafka.admin import ConfigResource, ResourceType

    resource = ConfigResource(ResourceType.TOPIC, name)
    admin = admin_client(bootstrap_servers)
    result = admin.describe_configs([resource])[resource].result(timeout=timeout)
    return {key: entry.value for key, entry in result.items()}


def earliest_offsets(
    bootstrap_servers: str, topics: tuple[str, ...] | list[str], timeout: float = 30.0
) -> dict[str, int]:
    """``{"topic-partition": earliest offset still on the broker}`` (retention moves it)."""
    return _list_offsets(bootstrap_servers, topics, "earliest", timeout)


def latest_offsets(
    bootstrap_servers: str, topics: tuple[str, ...] | list[str], timeout: float = 30.0
) -> dict[str, int]:
    """``{"topic-partition": end offset}`` (the offset the next record will get)."""
    return _list_offsets(bootstrap_servers, topics, "latest", timeout)


def _list_offsets(bootstrap_servers: str, topics: Sequence[str], which: str, timeout: float) -> dict[str, int]:
    return list_offsets(admin_client(bootstrap_servers), topics, which=which, timeout=timeout,
                        where=bootstrap_servers)


def list_offsets(
    admin: AdminClient, topics: Sequence[str], *, which: str, timeout: float = 30.0, where: str = "the cluster"
) -> dict[str, int]:
    """``{"topic-partition": offset}`` (``which``: earliest | latest) through any AdminClient —
    ours, or the Kafka provider's hook's (same cluster config, Airflow connection)."""
    from confluent_kafka import TopicPartition
    from confluent_kafka.admin import OffsetSpec

    metadata = admin.list_topics(timeout=timeout)
    missing = [t for t in topics if t not in metadata.topics or metadata.topics[t].error is not None]
    if missing:
        raise TopicError("; ".join(
            f"topic {t!r} does not exist on {where}: create it with `kafkalake topic create {t}`" for t in missing
        ))
    spec = OffsetSpec.earliest() if which == "earliest" else OffsetSpec.latest()
    request = {
        TopicPartition(topic, partition): spec
        for topic in topics
        for partition in metadata.topics[topic].partitions
    }
    futures = admin.list_offsets(request, request_timeout=timeout)
    return {f"{tp.topic}-{tp.partition}": fut.result(timeout=timeout).offset for tp, fut in futures.items()}


def delete_records_before(bootstrap_servers: str, offsets: dict[str, int], timeout: float = 30.0) -> None:
    """Move log start offsets (``{"topic-partition": offset}``): what retention does, on demand."""
    from confluent_kafka import TopicPartition

    admin = admin_client(bootstrap_servers)
    request = []
    for tp, offset in offsets.items():
        topic, _, partition = tp.rpartition("-")
        request.append(TopicPartition(topic, int(partition), offset))
    for future in admin.delete_records(request, request_timeout=timeout).values():
        future.result(timeout=timeout)


def record_timestamps(
    bootstrap_servers: str, offsets: dict[str, int], timeout: float = 30.0
) -> dict[str, float | None]:
    """``{"topic-partition": timestamp (s) of the record at that offset}`` (None: no record yet).

    A record deleted by retention answers with the next one still on the broker.
    """
    import uuid

    from confluent_kafka import Consumer, TopicPartition

    if not offsets:
        return {}
    consumer = Consumer({"bootstrap.servers": bootstrap_servers, "group.id": f"kafkalake-probe-{uuid.uuid4().hex}",
                         "enable.auto.commit": False, "auto.offset.reset": "earliest"})
    found: dict[str, float | None] = {}
    try:
        for tp, offset in offsets.items():
            topic, _, partition = tp.rpartition("-")
            consumer.assign([TopicPartition(topic, int(partition), offset)])
            messages = consumer.consume(num_messages=1, timeout=timeout)
            message = next((m for m in messages if m.error() is None), None)
            found[tp] = message.timestamp()[1] / 1000.0 if message is not None else None
    finally:
        consumer.close()
    return found
