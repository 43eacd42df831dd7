"""Kafka administration: topics, offsets and record timestamps, through confluent-kafka."""

from __future__ import annotations

from typing import TYPE_CHECKING

from kafkalake._exports import lazy_exports

if TYPE_CHECKING:
    from kafkalake.kafka.topics import (
        TopicError,
        admin_client,
        create_topic,
        earliest_offsets,
        latest_offsets,
        list_offsets,
        record_timestamps,
        validate_topic_name,
    )

_EXPORTS = {
    "TopicError": "topics",
    "admin_client": "topics",
    "create_topic": "topics",
    "earliest_offsets": "topics",
    "latest_offsets": "topics",
    "list_offsets": "topics",
    "record_timestamps": "topics",
    "validate_topic_name": "topics",
}
__all__ = [
    "TopicError",
    "admin_client",
    "create_topic",
    "earliest_offsets",
    "latest_offsets",
    "list_offsets",
    "record_timestamps",
    "validate_topic_name",
]
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
