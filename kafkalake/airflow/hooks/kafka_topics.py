"""Kafka topic checks through the Kafka provider's admin hook (connection ``kafka_default``).

The connection's extras are the librdkafka settings (``bootstrap.servers``, security), so a
supervisor DAG checks the same cluster its Spark job reads, whatever the deployment.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from airflow.providers.apache.kafka.hooks.client import KafkaAdminClientHook

from kafkalake.kafka.topics import list_offsets


class KafkaTopicsHook(KafkaAdminClientHook):
    """Topic existence and end offsets, as ``{"topic-partition": offset}`` like the rest of kafkalake."""

    hook_name = "Apache Kafka (kafkalake topics)"

    def bootstrap_servers(self) -> str:
        return str(self.get_connection(self.kafka_config_id).extra_dejson.get("bootstrap.servers", "?"))

    def end_offsets(self, topics: Sequence[str], *, timeout: float = 30.0) -> dict[str, int]:
        """The offset the next record of each partition will get; a missing topic raises TopicError."""
        return list_offsets(self.get_conn, topics, which="latest", timeout=timeout, where=self.bootstrap_servers())

    def check_stream(self, stream_name: str) -> dict[str, Any]:
        """A stream's topics exist; log their end offsets and how far its checkpoint is behind.

        Returns ``{"end_offsets": {...}, "backlog": N}`` (backlog None before the first batch).
        """
        from kafkalake.config import get_settings
        from kafkalake.stream.checkpoint import checkpoint_resume_offsets
        from kafkalake.stream.config import get_stream, stream_paths

        settings = get_settings()
        stream = get_stream(settings, stream_name)
        end = self.end_offsets(stream.topics)
        checkpoint = stream_paths(settings, stream).checkpoint
        resume = checkpoint_resume_offsets(checkpoint)
        for tp, offset in sorted(end.items()):
            if resume is None:
                self.log.info("%s: end offset %d (no checkpoint yet)", tp, offset)
            else:
                self.log.info("%s: end offset %d, checkpoint at %d, backlog %d",
                              tp, offset, resume.get(tp, 0), max(0, offset - resume.get(tp, 0)))
        backlog = None if resume is None else sum(max(0, off - resume.get(tp, 0)) for tp, off in end.items())
        self.log.info("stream %s: topics %s exist on %s; backlog %s", stream.name, ", ".join(stream.topics),
                      self.bootstrap_servers(), "unknown (first run)" if backlog is None else f"{backlog:,} records")
        return {"end_offsets": end, "backlog": backlog}
