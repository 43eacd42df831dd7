"""The Lake view's data: Iceberg metadata of the streams' tables, read cheaply and cached.

docs/operator-views.md: Lake. A table changes only by a commit, and a commit writes a new
metadata file and new manifests while old manifests never change: so the reader asks the
catalog for every table's metadata location in one query, reloads only the tables whose
location moved, and parses each manifest once (by path). A view of a table of 10,000 files
reads its manifests the first time and afterwards only what the newest commits added. Data
files are read only for the quarantine tables (their ``reason`` and ``timestamp`` columns,
once per file), which hold only the records that did not decode.

"Closed" needs the streams' watermarks, which take Kafka requests
(:func:`kafkalake.stream.watermark.closed_before`): :class:`Watermarks` computes them in a
background thread at most once a minute, never while a view renders.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from kafkalake.catalog.config import catalog_config
from kafkalake.compaction.plan import DataFile, HourPlan, outputs_for, plan_hours
from kafkalake.compaction.run import report_dir
from kafkalake.config import Settings
from kafkalake.lake.tables import Hour
from kafkalake.stream.config import MIB, StreamConfig

log = logging.getLogger(__name__)

#: snapshots listed per table, newest first
SNAPSHOTS_SHOWN = 30
#: how old a watermark may be before the background thread computes it again
WATERMARK_TTL_S = 60.0


@dataclass(frozen=True)
class FileEntry:
    """One live data file of a table, from its manifest."""

    path: str
    hour: Hour | None
    rows: int
    bytes: int
    #: min and max ``schema_version`` in the file (None: the table has no such column)
    versions: tuple[int, int] | None = None


@dataclass
class TableFacts:
    """What one metadata file of a table says (cached until the table's next commit)."""

    name: str
    identifier: str
    location: str
    snapshot_id: int | None
    snapshots: list[dict[str, Any]]
    files: list[FileEntry]
    formats: list[str] = field(default_factory=list)
    manifest_paths: list[str] = field(default_factory=list, repr=False)
    #: the table's FileIO, for the few data files the views read (quarantine tables)
    io: Any = field(default=None, repr=False)

    def files_by_hour(self) -> dict[Hour, list[DataFile]]:
        by_hour: dict[Hour, list[DataFile]] = {}
        for entry in self.files:
            if entry.hour is not None:
                by_hour.setdefault(entry.hour, []).append(DataFile(entry.bytes, entry.rows))
        return by_hour


def _snapshot_row(snapshot: Any) -> dict[str, Any]:
    summary = dict(snapshot.summary.additional_properties) if snapshot.summary else {}
    operation = snapshot.summary.operation.value if snapshot.summary else "?"

    def number(key: str) -> int:
        return int(summary.get(key, 0) or 0)

    return {
        "snapshot_id": snapshot.snapshot_id,
        "time": datetime.fromtimestamp(snapshot.timestamp_ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "operation": operation,
        "files_added": number("added-data-files"),
        "files_removed": number("deleted-data-files"),
        "rows_added": number("added-records"),
        "rows_removed": number("deleted-records"),
        "total_rows": number("total-records"),
        "total_files": number("total-data-files"),
        "writer": summary.get("kafkalake.writer"),
        "batch": summary.get("kafkalake.batch"),
    }


class LakeReader:
    """Iceberg facts for the views, cached per metadata location and per manifest."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._catalog: Any = None
        self._lock = threading.Lock()
        self._tables: dict[str, TableFacts] = {}
        self._manifests: dict[str, list[FileEntry]] = {}
        self._reasons: dict[str, list[tuple[str, float]]] = {}

    def _open(self) -> Any:
        if self._catalog is None:
            from kafkalake.catalog.config import open_catalog

            self._catalog = open_catalog(self.settings)
        return self._catalog

    def locations(self) -> dict[str, str]:
        """``{table: metadata location}`` of the namespace, in one catalog query."""
        from sqlalchemy import text

        config = catalog_config(self.settings)
        sqlite = config.sqlite_file
        if sqlite is not None and not sqlite.is_file():
            return {}
        catalog = self._open()
        with catalog.engine.connect() as conn:
            rows = conn.execute(
                text("SELECT table_name, metadata_location FROM iceberg_tables "
                     "WHERE catalog_name = :catalog AND table_namespace = :namespace"),
                {"catalog": config.name, "namespace": config.namespace},
            ).all()
        return {name: location for name, location in rows if location}

    def tables(self, names: list[str], locations: dict[str, str] | None = None) -> dict[str, TableFacts]:
        """The facts of each table of ``names`` that exists, reloading only changed ones."""
        locations = self.locations() if locations is None else locations
        found = {}
        with self._lock:
            for name in names:
                location = locations.get(name)
                if location is None:
                    continue
                cached = self._tables.get(name)
                if cached is None or cached.location != location:
                    cached = self._tables[name] = self._load(name, location)
                found[name] = cached
            live = {p for facts in self._tables.values() for p in facts.manifest_paths}
            for path in set(self._manifests) - live:  # manifests no snapshot lists any more
                del self._manifests[path]
        return found

    def _load(self, name: str, location: str) -> TableFacts:
        from pyiceberg.conversions import from_bytes

        config = catalog_config(self.settings)
        table = self._open().load_table(f"{config.namespace}.{name}")
        schema = table.schema()
        version_field = next((f for f in schema.fields if f.name == "schema_version"), None)
        hour_position = next((i for i, f in enumerate(table.spec().fields) if f.name == "timestamp_hour"), None)
        snapshot = table.current_snapshot()
        files: list[FileEntry] = []
        paths: list[str] = []
        formats: set[str] = set()
        if snapshot is not None:
            for manifest in snapshot.manifests(table.io):
                if manifest.content.value != 0:  # delete manifests: kafkalake writes none
                    continue
                paths.append(manifest.manifest_path)
                entries = self._manifests.get(manifest.manifest_path)
                if entries is None:
                    entries = []
                    for entry in manifest.fetch_manifest_entry(table.io, discard_deleted=True):
                        data = entry.data_file
                        hour = None
                        if hour_position is not None and data.partition[hour_position] is not None:
                            hour = Hour.of(datetime.fromtimestamp(data.partition[hour_position] * 3600, UTC))
                        versions = None
                        if version_field is not None:
                            low = (data.lower_bounds or {}).get(version_field.field_id)
                            high = (data.upper_bounds or {}).get(version_field.field_id)
                            if low is not None and high is not None:
                                versions = (from_bytes(version_field.field_type, low),
                                            from_bytes(version_field.field_type, high))
                        formats.add(str(data.file_format.value).lower())
                        entries.append(FileEntry(data.file_path, hour, data.record_count, data.file_size_in_bytes,
                                                 versions))
                    self._manifests[manifest.manifest_path] = entries
                files.extend(entries)
        snapshots = sorted(table.snapshots(), key=lambda s: s.timestamp_ms, reverse=True)[:SNAPSHOTS_SHOWN]
        facts = TableFacts(name=name, identifier=config.identifier(name), location=location,
                           snapshot_id=snapshot.snapshot_id if snapshot else None,
                           snapshots=[_snapshot_row(s) for s in snapshots], files=files,
                           formats=sorted(formats or {table.properties.get("write.format.default", "parquet")}),
                           manifest_paths=paths, io=table.io)
        return facts

    # ---- per stream

    def versions_seen(self, stream: StreamConfig, tables: dict[str, TableFacts]) -> list[int] | None:
        """The writer versions of the rows in the stream's tables: each file's min and max
        ``schema_version`` (exact for the versions a file starts and ends with; a file spanning
        more reads as its range)."""
        seen: set[int] = set()
        known = False
        for name in stream.tables.values():
            facts = tables.get(name)
            if facts is None:
                continue
            known = True
            for entry in facts.files:
                if entry.versions is not None:
                    low, high = entry.versions
                    seen.update(range(int(low), int(high) + 1))
        return sorted(seen) if known else None

    def quarantine(self, stream: StreamConfig, tables: dict[str, TableFacts], *, now: float | None = None) -> Any:
        """Quarantined records by reason, total and last hour (``timestamp``: Kafka's time)."""
        from kafkalake.ui.streams import Quarantine

        facts = tables.get(stream.quarantine_table)
        if facts is None:
            return None
        since = (time.time() if now is None else now) - 3600.0
        counts: dict[str, list[int]] = {}
        for entry in facts.files:
            for reason, stamp in self._file_reasons(facts, entry.path):
                total_hour = counts.setdefault(reason, [0, 0])
                total_hour[0] += 1
                total_hour[1] += stamp >= since
        return Quarantine(
            total=sum(t for t, _ in counts.values()), last_hour=sum(h for _, h in counts.values()),
            by_reason={reason: (t, h) for reason, (t, h) in sorted(counts.items())},
        )

    def _file_reasons(self, facts: TableFacts, path: str) -> list[tuple[str, float]]:
        cached = self._reasons.get(path)
        if cached is None:
            import pyarrow.parquet as pq

            with facts.io.new_input(path).open() as handle:
                columns = pq.read_table(handle, columns=["reason", "timestamp"])
            reasons = columns.column("reason").to_pylist()
            stamps = [s.timestamp() if s is not None else 0.0 for s in columns.column("timestamp").to_pylist()]
            cached = self._reasons[path] = [(str(r), t) for r, t in zip(reasons, stamps, strict=True)]
        return cached


# ---- hours and compaction


@dataclass(frozen=True)
class HourRow:
    """One hour of a table: its files and whether compaction is done with it."""

    hour: str
    files: int
    bytes: int
    rows: int
    mean_file_bytes: int
    closed: bool | None  # None: the watermark is not known (yet)
    compacted: bool
    state: str  # open | closed, not compacted | compacted


def hour_rows(facts: TableFacts, stream: StreamConfig, closed_before: datetime | None) -> list[HourRow]:
    """The table's hours, newest first, with the compaction planner's own rule
    (:func:`kafkalake.compaction.plan.plan_hours`): compacted = no more files than its bytes need."""
    target = int(stream.compaction.target_file_mb * MIB)
    cut = closed_before if closed_before is not None else datetime(1970, 1, 1, tzinfo=UTC)
    plans: list[HourPlan] = plan_hours(facts.files_by_hour(), closed_before=cut, target_bytes=target)
    rows = []
    for plan in reversed(plans):
        compacted = plan.files <= outputs_for(plan.bytes, target)
        hour = Hour.parse(plan.hour)
        closed = None if closed_before is None else hour.end <= closed_before
        if closed is None:
            state = "compacted" if compacted else "closed: unknown"
        elif not closed:
            state = "open"
        else:
            state = "compacted" if compacted else "closed, not compacted"
        rows.append(HourRow(plan.hour, plan.files, plan.bytes, plan.rows, plan.bytes // max(plan.files, 1),
                            closed, compacted, state))
    return rows


def latest_report(settings: Settings) -> dict[str, Any] | None:
    """The newest compaction report (its JSON, and the PNG beside it when there is one)."""
    import json

    folder = report_dir(settings)
    try:
        reports = sorted(folder.glob("*.json"), key=lambda p: p.stat().st_mtime)
    except OSError:
        return None
    if not reports:
        return None
    path = reports[-1]
    try:
        run = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    png = path.with_suffix(".png")
    return {"path": str(path), "name": path.stem, "run": run, "png": str(png) if png.is_file() else None}


def report_png(settings: Settings, name: str) -> Path | None:
    """The histogram of report ``name``, only from the reports folder (no other path)."""
    folder = report_dir(settings)
    candidate = folder / f"{name}.png"
    if "/" in name or name.startswith(".") or not candidate.is_file():
        return None
    return candidate


class Watermarks:
    """The streams' ``closed_before``, computed in the background at most once a minute."""

    def __init__(self, settings: Settings, *, ttl_s: float = WATERMARK_TTL_S) -> None:
        self.settings, self.ttl_s = settings, ttl_s
        self._values: dict[str, tuple[datetime | None, float, str | None]] = {}
        self._busy = threading.Lock()
        self._computed = 0.0

    def get(self, stream: StreamConfig, streams: list[StreamConfig]) -> tuple[datetime | None, str | None]:
        """(closed before, note): the cached value; a stale cache starts one refresh thread."""
        if time.monotonic() - self._computed > self.ttl_s and self._busy.acquire(blocking=False):
            self._computed = time.monotonic()
            threading.Thread(target=self._refresh, args=(streams,), daemon=True, name="kafkalake-watermarks").start()
        value, at, error = self._values.get(stream.name, (None, 0.0, "not computed yet"))
        return value, error

    def _refresh(self, streams: list[StreamConfig]) -> None:
        from kafkalake.compaction.plan import NOTHING_CLOSED
        from kafkalake.stream.watermark import StreamNotStarted, closed_before

        try:
            for stream in streams:
                try:
                    self._values[stream.name] = (closed_before(self.settings, stream), time.time(), None)
                except StreamNotStarted:
                    self._values[stream.name] = (NOTHING_CLOSED, time.time(), "no batch committed: every hour open")
                except Exception as exc:  # Kafka down: the view says so and shows no closed hour
                    self._values[stream.name] = (None, time.time(), str(exc).splitlines()[0][:200])
        finally:
            self._busy.release()
