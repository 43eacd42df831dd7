"""The lake's tables and their unit of work, the hour (docs/architecture.md: Deterministic partitions).

Every stream feeds Iceberg tables in the platform's catalog (:mod:`kafkalake.catalog`): one per
file format (``fridge``, ``fridge_avro``) and one quarantine table (``fridge_quarantine``), all
partitioned by the hour of the Kafka timestamp. Readers go to the catalog (Spark SQL,
pyiceberg, any Iceberg engine); kafkalake has no read path of its own.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from kafkalake.config import Settings
from kafkalake.errors import KafkalakeError
from kafkalake.stream.config import StreamConfig, load_streams

#: JSON-schema pattern of an hour param (the DAGs' forms); alignment is checked by Hour.parse
HOUR_PATTERN = r"^\d{4}-\d{2}-\d{2}T\d{2}(:00(:00)?)?(Z|[+-]00:?00)?$"


class LakeError(KafkalakeError):
    """The lake cannot do what was asked; the message says why and what to do."""


@dataclass(frozen=True, order=True)
class Hour:
    """One hour of Kafka (LogAppendTime) timestamps, UTC: the unit of compaction and backfill."""

    dt: str  # yyyy-MM-dd
    hour: int

    @property
    def key(self) -> str:
        return f"{self.dt}T{self.hour:02d}"

    @property
    def start(self) -> datetime:
        return datetime.fromisoformat(self.dt).replace(hour=self.hour, tzinfo=UTC)

    @property
    def end(self) -> datetime:
        return self.start + timedelta(hours=1)

    @property
    def folder(self) -> str:
        return f"dt={self.dt}/hour={self.hour}"

    @classmethod
    def of(cls, moment: datetime) -> Hour:
        moment = moment.astimezone(UTC)
        return cls(moment.strftime("%Y-%m-%d"), moment.hour)

    @classmethod
    def parse(cls, text: str) -> Hour:
        """``2026-11-24T05`` (a manifest key) or any ISO timestamp on a whole hour."""
        try:
            moment = datetime.fromisoformat(text if len(text) > 13 else f"{text}:00")
        except ValueError:
            raise LakeError(f"{text!r} is not an hour like 2026-11-24T05:00Z") from None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        if (moment.minute, moment.second, moment.microsecond) != (0, 0, 0):
            raise LakeError(f"{text!r} is not on a whole hour (hours are the unit: use e.g. {moment:%Y-%m-%dT%H}:00Z)")
        return cls.of(moment)


@dataclass(frozen=True)
class TableRef:
    """One table of a stream: its Iceberg name and file format (quarantine: ``fmt`` None)."""

    stream: str
    name: str
    fmt: str | None

    @property
    def is_quarantine(self) -> bool:
        return self.fmt is None


def stream_tables(stream: StreamConfig, *, quarantine: bool = True) -> list[TableRef]:
    refs = [TableRef(stream.name, name, fmt) for fmt, name in stream.tables.items()]
    return refs + ([TableRef(stream.name, stream.quarantine_table, None)] if quarantine else [])


def table_name(stream: StreamConfig, fmt: str) -> str:
    """The table of ``stream`` in ``fmt`` (the one rule: :attr:`StreamConfig.tables`)."""
    if fmt not in stream.sink_formats:
        raise LakeError(
            f"stream {stream.name!r} has no {fmt} table (sink_format in streams.yaml: {', '.join(stream.sink_formats)})"
        )
    return stream.tables[fmt]


def table_names(streams: Iterable[StreamConfig], *, quarantine: bool = False) -> list[str]:
    """Every table of ``streams``, sorted (what a DAG offers in its table param)."""
    return sorted(ref.name for stream in streams for ref in stream_tables(stream, quarantine=quarantine))


def all_tables(settings: Settings, *, quarantine: bool = False) -> list[tuple[StreamConfig, TableRef]]:
    streams = load_streams(settings.streams_file).values()
    return [(s, ref) for s in streams for ref in stream_tables(s, quarantine=quarantine)]


def resolve_table(settings: Settings, name: str) -> tuple[StreamConfig, TableRef]:
    """A table name (``fridge``, ``fridge_avro``, ``fridge_quarantine``) -> its stream and ref."""
    streams = load_streams(settings.streams_file)
    for stream in streams.values():
        for ref in stream_tables(stream):
            if ref.name == name:
                return stream, ref
    known = table_names(streams.values(), quarantine=True)
    raise LakeError(f"no table {name!r} (tables of {settings.streams_file.name}: {', '.join(known) or 'none'})")


def now_utc() -> datetime:
    return datetime.now(UTC)
