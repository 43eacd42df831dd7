"""Which closed hours of a table a compaction run merges, and into how many files.

The plan is read from the table's current snapshot through pyiceberg (its metadata: files,
bytes and rows per hour of the ``timestamp_hour`` partition), without Spark: a dry run or a
run with nothing to do starts no JVM work. An hour is merged when it has more data files than
its bytes need, ``max(1, ceil(bytes / target))``; a merged hour has exactly that many, so the
next run skips it (re-running is a no-op). Should a rewrite shrink an hour below the bytes of
its file count (sorted rows compress better), the next run merges it once more into fewer
files; from then on it is stable. Only closed hours are planned (docs/architecture.md:
Deterministic partitions).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

from kafkalake.config import Settings
from kafkalake.lake.tables import Hour, LakeError, TableRef
from kafkalake.stream.config import MIB, StreamConfig

#: cut-off for a table whose stream has not started: every hour counts as open
NOTHING_CLOSED = datetime(1970, 1, 1, tzinfo=UTC)
OPEN = "open: the stream may still write it"
#: the partition field of every kafkalake table: hour(timestamp)
HOUR_PARTITION = "timestamp_hour"


@dataclass(frozen=True)
class DataFile:
    """One data file of a table's snapshot, as its metadata lists it."""

    bytes: int
    rows: int


@dataclass
class HourPlan:
    hour: str  # key: 2026-11-24T05
    files: int
    bytes: int
    rows: int
    outputs: int
    action: str  # compact | skip
    why: str
    file_sizes: list[int] = field(default_factory=list)


@dataclass
class TablePlan:
    table: str
    stream: str
    fmt: str  # parquet | avro | quarantine
    snapshot_id: int | None  # the snapshot planned from (and read from)
    closed_before: str
    target_bytes: int
    hours: list[HourPlan]
    note: str = ""

    @property
    def to_compact(self) -> list[HourPlan]:
        return [h for h in self.hours if h.action == "compact"]

    def describe(self) -> list[str]:
        """The plan as an operator reads it (the dry run prints this)."""
        lines = [f"table {self.table} ({self.fmt}): hours closed before {self.closed_before}, "
                 f"target {self.target_bytes / MIB:g} MiB per file, snapshot {self.snapshot_id}"]
        for h in self.hours:
            size = f"{h.files} files, {h.bytes / MIB:.1f} MiB, {h.rows:,} rows"
            if h.action == "compact":
                lines.append(f"  {h.hour}  compact  {size} -> {h.outputs} file(s)")
            else:
                lines.append(f"  {h.hour}  skip     {size} ({h.why})")
        if not self.hours:
            lines.append(f"  {self.note or 'no data files in range'}")
        return lines


def outputs_for(size: int, target_bytes: int) -> int:
    """How many files ``size`` bytes of an hour need: ``max(1, ceil(size / target))``."""
    return max(1, math.ceil(size / target_bytes))


def plan_hours(
    files: Mapping[Hour, list[DataFile]],
    *,
    closed_before: datetime,
    target_bytes: int,
    first: Hour | None = None,
    last: Hour | None = None,
) -> list[HourPlan]:
    """The planning rule, hour by hour (pure: no table, no Spark)."""
    plans = []
    for hour, hour_files in sorted(files.items()):
        if (first and hour < first) or (last and hour > last) or not hour_files:
            continue
        size = sum(f.bytes for f in hour_files)
        outputs = outputs_for(size, target_bytes)
        action, why = "compact", ""
        if hour.end > closed_before:
            action, why = "skip", OPEN
        elif len(hour_files) <= outputs:
            action, why = "skip", f"compacted: {len(hour_files)} file(s), as many as {size / MIB:.1f} MiB need"
        plans.append(HourPlan(hour.key, len(hour_files), size, sum(f.rows for f in hour_files), outputs, action,
                              why, sorted(f.bytes for f in hour_files)))
    return plans


def hour_files(
    settings: Settings, table: str, snapshot_id: int | None = None
) -> tuple[int | None, dict[Hour, list[DataFile]]]:
    """(snapshot id, data files per hour) of ``table`` at ``snapshot_id`` (default: current).
    A table without a snapshot has no files; a missing table raises ``NoSuchTableError``.

    Read from the snapshot's data manifests entry by entry: pyiceberg's ``inspect.files`` also
    decodes every column's bounds into an Arrow table, 0.6 s against 0.16 s for 5,000 files."""
    from pyiceberg.manifest import ManifestContent

    from kafkalake.catalog.config import catalog_config, open_catalog

    loaded = open_catalog(settings).load_table(f"{catalog_config(settings).namespace}.{table}")
    snapshot = loaded.snapshot_by_id(snapshot_id) if snapshot_id is not None else loaded.current_snapshot()
    if snapshot is None:
        return None, {}
    specs = loaded.specs()
    by_hour: dict[Hour, list[DataFile]] = {}
    for manifest in snapshot.manifests(loaded.io):
        if manifest.content != ManifestContent.DATA:  # delete files: kafkalake writes none
            continue
        fields = [f.name for f in specs[manifest.partition_spec_id].fields]
        if HOUR_PARTITION not in fields:
            raise LakeError(f"{table}: its files are not partitioned by hour(timestamp) (partition fields: "
                            f"{', '.join(fields) or 'none'}); kafkalake creates its tables so, compact another table")
        position = fields.index(HOUR_PARTITION)
        for entry in manifest.fetch_manifest_entry(loaded.io, discard_deleted=True):
            data = entry.data_file
            hour = Hour.of(datetime.fromtimestamp(data.partition[position] * 3600, UTC))
            by_hour.setdefault(hour, []).append(DataFile(int(data.file_size_in_bytes), int(data.record_count)))
    return snapshot.snapshot_id, by_hour


def plan_table(
    settings: Settings,
    stream: StreamConfig,
    ref: TableRef,
    *,
    closed_before: datetime,
    first: Hour | None = None,
    last: Hour | None = None,
    target_mb: int | None = None,
) -> TablePlan:
    """What a run would do to ``ref``, hour by hour, from its current snapshot."""
    from pyiceberg.exceptions import NoSuchTableError

    from kafkalake.catalog.config import catalog_config

    target = int((target_mb or stream.compaction.target_file_mb) * MIB)
    fmt = ref.fmt or "quarantine"
    missing = TablePlan(ref.name, stream.name, fmt, None, closed_before.isoformat(), target, [],
                        note=f"no table yet: stream {stream.name} creates it when it first starts")
    sqlite = catalog_config(settings).sqlite_file
    if sqlite is not None and not sqlite.is_file():  # no stream has created the catalog yet
        return missing
    try:
        snapshot_id, files = hour_files(settings, ref.name)
    except NoSuchTableError:
        return missing
    hours = plan_hours(files, closed_before=closed_before, target_bytes=target, first=first, last=last)
    return TablePlan(ref.name, stream.name, fmt, snapshot_id, closed_before.isoformat(), target, hours)
