"""Which closed hours a compaction run merges, and into how many files."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime

from kafkalake.lake.landing import fingerprint, landing_hours
from kafkalake.lake.manifest import read_manifest
from kafkalake.lake.tables import Hour, TablePaths
from kafkalake.stream.config import MIB, StreamConfig

PHASES = ("plan", "write", "verify", "publish", "cleanup")
#: cut-off for a table whose stream has not started: every landing hour counts as open
NOTHING_CLOSED = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass
class HourPlan:
    hour: str  # key: 2026-11-24T05
    files: int
    bytes: int
    outputs: int
    action: str  # compact | skip
    why: str
    fingerprint: str
    file_sizes: list[int] = field(default_factory=list)


@dataclass
class TablePlan:
    table: str
    fmt: str
    closed_before: str
    target_bytes: int
    hours: list[HourPlan]

    @property
    def to_compact(self) -> list[HourPlan]:
        return [h for h in self.hours if h.action == "compact"]

    def describe(self) -> list[str]:
        """The plan as an operator reads it (the dry run prints this)."""
        lines = [f"table {self.table} ({self.fmt}): hours closed before {self.closed_before}, "
                 f"target {self.target_bytes / MIB:g} MiB per file"]
        for h in self.hours:
            size = f"{h.files} files, {h.bytes / MIB:.1f} MiB"
            if h.action == "compact":
                lines.append(f"  {h.hour}  compact  {size} -> {h.outputs} file(s)")
            else:
                lines.append(f"  {h.hour}  skip     {size} ({h.why})")
        if not self.hours:
            lines.append("  no landing hours in range")
        return lines


def plan_table(
    stream: StreamConfig,
    paths: TablePaths,
    *,
    closed_before: datetime,
    first: Hour | None = None,
    last: Hour | None = None,
    target_mb: int | None = None,
) -> TablePlan:
    """What a run would do, hour by hour (pure file-system reads: the commit log and manifest)."""
    target = int((target_mb or stream.compaction.target_file_mb) * MIB)
    manifest = read_manifest(paths)
    hours = []
    for hour, files in sorted(landing_hours(paths).items()):
        if (first and hour < first) or (last and hour > last):
            continue
        size = sum(files.values())
        entry = manifest["hours"].get(hour.key)
        fp = fingerprint(files)
        outputs = max(1, math.ceil(size / target))
        action, why = "compact", ""
        if hour.end > closed_before:
            action, why = "skip", "open: the stream may still write it"
        elif entry and fp in (entry.get("source_fingerprint"), entry.get("landing_fingerprint")):
            # landing_fingerprint: a backfill replaced the hour from Kafka while landing looked like this
            action, why = "skip", "compacted, unchanged since"
        elif entry is None and len(files) <= 1:
            action, why = "skip", "a single file: nothing to merge"
        hours.append(HourPlan(hour.key, len(files), size, outputs, action, why, fp, sorted(files.values())))
    return TablePlan(stream.name, paths.fmt, closed_before.isoformat(), target, hours)
