"""The lake zone and THE read path of a table (docs/architecture.md: Deterministic partitions, One read path).

A table is one stream in one sink format. Its rows live in two places:

* the **landing** sink (``$LAKE/landing/<fmt>/<table>``): Spark's file sink, many small files
  per hour, committed by its ``_spark_metadata`` log — never modified by anyone but the stream;
* the **lake** zone (``$LAKE/lake/<fmt>/<table>``): hours rewritten into few large files by
  compaction (or backfill). Which files make up an hour is decided by one file,
  ``_manifest.json``, replaced atomically (``os.replace``): a reader sees an hour either in the
  lake (listed by the manifest) or in landing (not listed), never both, never neither.

:func:`read_table` (Spark) and :func:`read_table_arrow` (pyarrow, DuckDB) return
``lake hours ∪ landing hours not in the manifest``. Files of a published hour are only ever
added under a new version folder (``dt=…/hour=…/v=<run>``); a replaced version is deleted after
a reader grace period, and landing files only after the hour is in the lake and past
retention — so a reader that listed the manifest a moment ago still finds its files.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from kafkalake.config import Settings
from kafkalake.errors import KafkalakeError
from kafkalake.stream.config import FORMATS, StreamConfig, get_stream, load_streams, stream_paths

MANIFEST = "_manifest.json"
HOUR_COLUMNS = ("dt", "hour")
#: landing-only columns that are not part of a table row
LANDING_ONLY = ("zone", "reason", "raw_key", "raw_value")
#: JSON-schema pattern of an hour param (the DAGs' forms); alignment is checked by Hour.parse
HOUR_PATTERN = r"^\d{4}-\d{2}-\d{2}T\d{2}(:00(:00)?)?(Z|[+-]00:?00)?$"
_HOUR_DIR = re.compile(r"/zone=([^/]+)/dt=(\d{4}-\d{2}-\d{2})/hour=(\d{1,2})/")


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
class TablePaths:
    name: str
    fmt: str
    landing: Path  # the stream's file sink (read only, through its commit log)
    lake: Path  # compacted hours + _manifest.json + _journal/

    @property
    def manifest(self) -> Path:
        return self.lake / MANIFEST

    @property
    def journal_dir(self) -> Path:
        return self.lake / "_journal"


def table_name(stream: StreamConfig, fmt: str) -> str:
    """The table of ``stream`` in ``fmt``: its name, with ``.<fmt>`` unless fmt is its first format.

    The one rule: DAG params, Assets, reports and :func:`resolve_table` all go through it.
    """
    if fmt not in stream.sink_formats:
        raise LakeError(
            f"table {stream.name!r} has no {fmt} sink (sink_format in streams.yaml: {', '.join(stream.sink_formats)})"
        )
    return stream.name if fmt == stream.sink_formats[0] else f"{stream.name}.{fmt}"


def table_names(streams: Iterable[StreamConfig]) -> list[str]:
    """Every table of ``streams``, sorted (what a DAG offers in its table param)."""
    return sorted(table_name(stream, fmt) for stream in streams for fmt in stream.sink_formats)


def table_paths(settings: Settings, stream: StreamConfig, fmt: str | None = None) -> TablePaths:
    """Where table ``stream.name`` lives in format ``fmt`` (default: the stream's first format)."""
    fmt = fmt or stream.sink_formats[0]
    if fmt not in stream.sink_formats:
        raise LakeError(
            f"table {stream.name!r} has no {fmt} sink (sink_format in streams.yaml: {', '.join(stream.sink_formats)})"
        )
    landing = stream_paths(settings, stream).landing[fmt]
    return TablePaths(stream.name, fmt, landing, settings.lake_root / "lake" / fmt / stream.name)


def resolve_table(settings: Settings, name: str, fmt: str | None = None) -> tuple[StreamConfig, TablePaths]:
    """A table name (= stream name, optionally ``name.avro``) -> its stream and paths."""
    if fmt is None and "." in name:
        name, fmt = name.rsplit(".", 1)
    if fmt is not None and fmt not in FORMATS:
        raise LakeError(f"format {fmt!r} must be one of {', '.join(FORMATS)}")
    stream = get_stream(settings, name)
    return stream, table_paths(settings, stream, fmt)


def all_tables(settings: Settings) -> list[tuple[StreamConfig, TablePaths]]:
    return [
        (s, table_paths(settings, s, f)) for s in load_streams(settings.streams_file).values() for f in s.sink_formats
    ]


def now_utc() -> datetime:
    return datetime.now(UTC)
