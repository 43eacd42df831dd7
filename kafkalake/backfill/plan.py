"""A backfill's plan: the request checked against the stream, Kafka and the lake, hour by hour."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from kafkalake.backfill.request import (
    EARLIEST,
    LATEST,
    BackfillError,
    BackfillRequest,
    Offsets,
    check_cover,
    hour_ranges,
    incomplete_hours,
    iso,
    output_files,
    records_in,
    refuse_open,
)
from kafkalake.config import Settings
from kafkalake.lake.landing import landing_hours
from kafkalake.lake.manifest import read_manifest
from kafkalake.lake.tables import Hour, TablePaths
from kafkalake.stream.config import MIB, StreamConfig


@dataclass
class HourPlan:
    hour: str
    action: str  # replace | add | skip
    why: str
    kafka_offsets: dict[str, list[int]]  # tp -> [first, end) per Kafka's time index
    offsets_in_range: int
    kafka_complete: bool
    lake_rows: int | None
    lake_origin: str | None
    landing_files: int
    landing_bytes: int
    outputs: int


@dataclass
class BackfillPlan:
    table: str
    fmt: str
    source: str
    mode: str
    start: str
    end: str
    closed_before: str
    topics: list[str]
    target_bytes: int
    hours: list[HourPlan]
    #: offsets mode: the resolved range Spark reads (``{"topic": {"0": n}}``)
    starting_offsets: Offsets | None = None
    ending_offsets: Offsets | None = None

    @property
    def to_write(self) -> list[HourPlan]:
        return [h for h in self.hours if h.action != "skip"]

    @property
    def estimated_records(self) -> int:
        return sum(h.offsets_in_range for h in self.hours)

    def describe(self) -> list[str]:
        """The plan as an operator reads it (what a dry run prints)."""
        how = {"timestamps": "Kafka by time", "offsets": "Kafka by offsets", "landing": "the landing sink"}[self.mode]
        lines = [f"backfill {self.table} ({self.fmt}) from {how}: [{self.start}, {self.end}) = "
                 f"{len(self.hours)} hour(s); hours closed before {self.closed_before}"]
        if self.mode == "offsets":
            for topic in sorted(self.starting_offsets or {}):
                ranges = ", ".join(f"{p}: {self.starting_offsets[topic][p]}..{(self.ending_offsets or {})[topic][p]}"
                                   for p in sorted(self.starting_offsets[topic], key=int))
                lines.append(f"  offsets {topic}: {ranges}")
        lines.append(f"  {'hour':13}  {'est. records':>12}  {'in the lake now':28}  action")
        for h in self.hours:
            now = f"{h.lake_rows:,} rows ({h.lake_origin})" if h.lake_rows is not None else "-"
            kafka = f"{h.offsets_in_range:>12,}" + ("" if h.kafka_complete else "*")
            what = f"{h.action} -> {h.outputs} file(s)" if h.action != "skip" else f"skip: {h.why}"
            lines.append(f"  {h.hour:13}  {kafka:>12}  {now:28}  {what}")
        lines.append(f"  total ~{self.estimated_records:,} records in Kafka for these hours")
        if any(not h.kafka_complete for h in self.hours):
            lines.append("  * Kafka no longer holds every record of this hour (retention): landing rebuild only")
        return lines


def _offsets_at(admin: Any, moments: list[datetime], latest: dict[str, int],
                timeout: float = 30.0) -> list[dict[str, int]]:
    """Per moment: ``{tp: first offset with timestamp >= moment}`` (Kafka's time index); the
    end offset where no record is that late (what Spark's ``endingTimestamp`` does too)."""
    from confluent_kafka import TopicPartition
    from confluent_kafka.admin import OffsetSpec

    out = []
    for moment in moments:
        ms = int(moment.timestamp() * 1000)
        request = {}
        for tp in latest:
            topic, _, partition = tp.rpartition("-")
            request[TopicPartition(topic, int(partition))] = OffsetSpec.for_timestamp(ms)
        futures = admin.list_offsets(request, request_timeout=timeout)
        found = {}
        for tp, future in futures.items():
            offset = future.result(timeout=timeout).offset
            key = f"{tp.topic}-{tp.partition}"
            found[key] = latest[key] if offset < 0 else offset
        out.append(found)
    return out


def _log_starts(settings: Settings, earliest: dict[str, int],
                latest: dict[str, int]) -> dict[str, tuple[int, datetime | None]]:
    """``{tp: (earliest offset, its record's timestamp)}`` for partitions whose log start moved."""
    from kafkalake.kafka.topics import record_timestamps

    moved = {tp: off for tp, off in earliest.items() if off > 0}
    probe = {tp: off for tp, off in moved.items() if off < latest.get(tp, off)}
    stamps = record_timestamps(settings.bootstrap_servers, probe) if probe else {}
    return {tp: (off, datetime.fromtimestamp(stamps[tp], UTC) if stamps.get(tp) is not None else None)
            for tp, off in moved.items()}


def _resolve(offsets: Offsets, defaults: dict[str, int], sentinel: int) -> dict[str, int]:
    """``{"topic": {"0": n}}`` with -2/-1 -> ``{"topic-0": n}`` with real offsets."""
    return {f"{topic}-{p}": (defaults.get(f"{topic}-{p}", 0) if off == sentinel else off)
            for topic, parts in offsets.items() for p, off in parts.items()}


def _as_json(flat: dict[str, int]) -> Offsets:
    out: Offsets = {}
    for tp, off in sorted(flat.items()):
        topic, _, partition = tp.rpartition("-")
        out.setdefault(topic, {})[partition] = off
    return out


def closed_cutoff(settings: Settings, stream: StreamConfig, paths: TablePaths) -> datetime:
    """:func:`kafkalake.stream.watermark.closed_before` (watermark minus grace), with a backfill's hint
    when the stream has not committed anything yet."""
    from kafkalake.stream.checkpoint import checkpoint_resume_offsets
    from kafkalake.stream.config import stream_paths
    from kafkalake.stream.watermark import closed_before

    if checkpoint_resume_offsets(stream_paths(settings, stream).checkpoints[paths.fmt]) is None:
        raise BackfillError(f"stream {stream.name!r} has not committed a batch to its {paths.fmt} sink yet, so no hour "
                            f"is known to be closed; start it first (`kafkalake stream run {stream.name}`)")
    return closed_before(settings, stream, paths)


def plan_backfill(settings: Settings, request: BackfillRequest) -> BackfillPlan:
    """Check a request against the stream, Kafka and the lake; what a run would do, hour by hour.

    Refuses (one line): an unknown table; hours still open to the stream; hours Kafka no
    longer holds completely (Kafka source); offsets that do not cover the hours; hours with
    no landing files, or whose landing files were deleted (landing source); an hour for which
    Kafka's time index has fewer records than the lake has rows, or none while landing has
    files (the backfill would drop rows). Hours with nothing anywhere are skipped.
    """
    from kafkalake.kafka.topics import admin_client, list_offsets
    from kafkalake.lake.tables import resolve_table

    stream, paths = resolve_table(settings, request.table)
    hours = request.hours
    span = f"[{iso(request.start)}, {iso(request.end)})"
    cutoff = closed_cutoff(settings, stream, paths)
    refuse_open(hours, cutoff, stream=stream.name, fmt=paths.fmt, grace_minutes=stream.compaction.grace_minutes)

    admin = admin_client(settings.bootstrap_servers)
    latest = list_offsets(admin, stream.topics, which="latest", where=settings.bootstrap_servers)
    earliest = list_offsets(admin, stream.topics, which="earliest", where=settings.bootstrap_servers)
    boundaries = _offsets_at(admin, [h.start for h in hours] + [hours[-1].end], latest)
    ranges = hour_ranges(boundaries)
    gone = incomplete_hours(hours, _log_starts(settings, earliest, latest))

    start_json = end_json = None
    if request.mode == "offsets":
        start_json, end_json = _offsets_range(request, stream, earliest, latest, boundaries, span=span)

    manifest = read_manifest(paths)
    landing = landing_hours(paths)
    published = [e for e in manifest["hours"].values() if e.get("rows")]
    bytes_per_row = (sum(e["bytes"] for e in published) / sum(e["rows"] for e in published)) if published else None
    target = int(stream.compaction.target_file_mb * MIB)
    planned = []
    for hour, hour_range in zip(hours, ranges, strict=True):
        entry = manifest["hours"].get(hour.key)
        files = landing.get(hour, {})
        in_kafka = records_in(hour_range)
        complete = hour.key not in gone
        action, why = _hour_action(request.source, hour, entry, files, in_kafka, gone)
        size = sum(files.values())
        planned.append(HourPlan(
            hour=hour.key, action=action, why=why,
            kafka_offsets={tp: [a, b] for tp, (a, b) in hour_range.items()},
            offsets_in_range=in_kafka, kafka_complete=complete,
            lake_rows=entry["rows"] if entry else None, lake_origin=entry.get("origin") if entry else None,
            landing_files=len(files), landing_bytes=size,
            outputs=output_files(target, lake_bytes=entry["bytes"] if entry else None, landing_bytes=size,
                                 records=in_kafka, bytes_per_row=bytes_per_row),
        ))
    return BackfillPlan(
        table=request.table, fmt=paths.fmt, source=request.source, mode=request.mode,
        start=iso(request.start), end=iso(request.end), closed_before=iso(cutoff), topics=list(stream.topics),
        target_bytes=target, hours=planned, starting_offsets=start_json, ending_offsets=end_json,
    )


def _offsets_range(request: BackfillRequest, stream: StreamConfig, earliest: dict[str, int], latest: dict[str, int],
                   boundaries: list[dict[str, int]], *, span: str) -> tuple[Offsets, Offsets]:
    """Offsets mode: the requested range, resolved (-2/-1) and checked to cover the hours and to be in Kafka."""
    assert request.starting_offsets is not None and request.ending_offsets is not None
    unknown = sorted(set(request.starting_offsets) - set(stream.topics))
    if unknown:
        raise BackfillError(f"topic(s) {', '.join(unknown)} are not read by stream {stream.name!r} "
                            f"(its topics: {', '.join(stream.topics)})")
    first = _resolve(request.starting_offsets, earliest, EARLIEST)
    end = _resolve(request.ending_offsets, latest, LATEST)
    check_cover(first, end, boundaries[0], boundaries[-1], span=span)
    for tp in sorted(first):
        if first[tp] < earliest[tp] or end[tp] > latest[tp]:
            raise BackfillError(f"{tp}: offsets {first[tp]}..{end[tp]} are outside what Kafka holds "
                                f"({earliest[tp]}..{latest[tp]})")
    return _as_json(first), _as_json(end)


def _hour_action(source: str, hour: Hour, entry: dict[str, Any] | None, files: Mapping[Any, int], in_kafka: int,
                 gone: Mapping[str, str]) -> tuple[str, str]:
    """(action, why) for one hour, or a refusal when replacing it would lose rows."""
    action, why = ("replace" if entry else "add"), ""
    if source == "kafka":
        if hour.key in gone:
            raise BackfillError(f"hour {hour.key}: Kafka no longer holds all of its records ({gone[hour.key]}); "
                                f"rebuild it from the landing zone (source=landing)")
        if entry and entry["rows"] > in_kafka:
            raise BackfillError(f"hour {hour.key}: Kafka's time index puts {in_kafka:,} records in it but the "
                                f"lake has {entry['rows']:,} rows; replacing them would lose rows (timestamps "
                                f"out of order in a CreateTime topic?): rebuild it from landing")
        if in_kafka == 0:
            if files:
                raise BackfillError(f"hour {hour.key}: Kafka has no records for it but landing has {len(files)} "
                                    f"file(s); refusing to replace them with nothing")
            action, why = "skip", "no records in Kafka, nothing in the table"
    else:
        if not files:
            raise BackfillError(f"hour {hour.key} has no landing files to rebuild from; backfill it from Kafka "
                                f"(source=kafka)")
        if entry and entry.get("landing_removed"):
            raise BackfillError(f"hour {hour.key}: its landing files were deleted after compaction (retention); "
                                f"backfill it from Kafka (source=kafka)")
    return action, why
