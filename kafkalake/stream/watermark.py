"""When is an hour closed? (docs/architecture.md: Deterministic partitions)

Topics use LogAppendTime, so within a partition timestamps never go backwards. The stream's
checkpoint says, per partition, the next offset it will read (everything before is committed
to its tables). So every record with a timestamp before

    min over partitions of (timestamp of the record at the committed offset,
                            or "now" when the partition is fully read)

is in the tables: that is the stream's watermark. Hour H is closed when
``H.end + grace <= watermark`` — compaction and backfill touch only closed hours.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from kafkalake.config import Settings
from kafkalake.errors import KafkalakeError
from kafkalake.stream.config import StreamConfig, stream_paths


class WatermarkError(KafkalakeError):
    """The stream's watermark cannot be computed (Kafka does not answer for a committed offset)."""


def stream_watermark(settings: Settings, stream: StreamConfig) -> datetime | None:
    """Every record of ``stream`` with a timestamp before this is committed to its tables.
    None before the stream committed its first batch."""
    from kafkalake.kafka.topics import earliest_offsets, latest_offsets, record_timestamps
    from kafkalake.stream.checkpoint import checkpoint_resume_offsets

    checkpoint = stream_paths(settings, stream).checkpoint
    committed = checkpoint_resume_offsets(checkpoint)
    if committed is None:
        return None
    now = datetime.now(UTC)  # before asking for end offsets: later records are later than now
    latest = latest_offsets(settings.bootstrap_servers, stream.topics)
    earliest = earliest_offsets(settings.bootstrap_servers, stream.topics)
    behind = {
        tp: committed.get(tp, earliest[tp]) for tp, end in latest.items() if committed.get(tp, earliest[tp]) < end
    }
    marks = [now]
    for tp, stamp in record_timestamps(settings.bootstrap_servers, behind).items():
        if stamp is None:
            raise WatermarkError(f"cannot read the record at the committed offset of {tp}: is Kafka reachable?")
        marks.append(datetime.fromtimestamp(stamp, UTC))
    return min(marks)


class StreamNotStarted(KafkalakeError):
    """The stream never committed a batch, so no hour of its table is known to be closed."""


def closed_before(settings: Settings, stream: StreamConfig, *, limit: datetime | None = None) -> datetime:
    """The end of the last hour compaction may touch: the stream's watermark minus grace.

    ``limit`` can only lower it — except for a table no stream has committed to (an import,
    a benchmark), where ``limit`` is the operator's statement that those hours are complete.
    """
    mark = stream_watermark(settings, stream)
    if mark is None:
        if limit is None:
            raise StreamNotStarted(
                f"stream {stream.name!r} has not committed a batch yet, so no hour is known "
                f"to be closed; start it (`kafkalake stream run {stream.name}`) or pass --closed-before "
                "for a table no stream feeds"
            )
        return limit
    mark -= timedelta(minutes=stream.compaction.grace_minutes)
    return min(mark, limit) if limit else mark
