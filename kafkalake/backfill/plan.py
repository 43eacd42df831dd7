"""A backfill's plan: the request checked against the stream, Kafka and the tables, hour by hour."""

from __future__ import annotations

from collections.abc import Iterable
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
    records_in,
    refuse_open,
)
from kafkalake.config import Settings
from kafkalake.lake.tables import Hour, TableRef
from kafkalake.stream.config import StreamConfig


@dataclass
class HourPlan:
    hour: str
    action: str  # replace | skip
    why: str
    kafka_offsets: dict[str, list[int]]  # tp -> [first, end) per Kafka's time index
    offsets_in_range: int
    #: rows the table and the quarantine table hold for the hour now (their metadata)
    table_rows: int
    quarantine_rows: int


@dataclass
class BackfillPlan:
    table: str
    quarantine_table: str
    stream: str
    fmt: str
    mode: str
    start: str
    end: str
    closed_before: str
    topics: list[str]
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
        how = {"timestamps": "Kafka by time", "offsets": "Kafka by offsets"}[self.mode]
        lines = [f"backfill {self.table} + {self.quarantine_table} from {how}: [{self.start}, {self.end}) = "
                 f"{len(self.hours)} hour(s); hours closed before {self.closed_before}"]
        if self.mode == "offsets":
            for topic in sorted(self.starting_offsets or {}):
                ranges = ", ".join(f"{p}: {self.starting_offsets[topic][p]}..{(self.ending_offsets or {})[topic][p]}"
                                   for p in sorted(self.starting_offsets[topic], key=int))
                lines.append(f"  offsets {topic}: {ranges}")
        lines.append(f"  {'hour':13}  {'est. records':>12}  {'in the tables now':28}  action")
        for h in self.hours:
            now = f"{h.table_rows:,} rows + {h.quarantine_rows:,} quarantined"
            what = h.action if h.action != "skip" else f"skip: {h.why}"
            lines.append(f"  {h.hour:13}  {h.offsets_in_range:>12,}  {now:28}  {what}")
        lines.append(f"  total ~{self.estimated_records:,} records in Kafka for these hours")
        return lines


def rows_by_hour(settings: Settings, table: str, hours: Iterable[Hour]) -> dict[str, int]:
    """Rows per hour of ``table``'s main branch, from its metadata (the data files' record
    counts; pyiceberg, no Spark, whatever the file format). Hours without rows are 0.

    Row-level deletes are not subtracted: kafkalake's writers never make them (appends and
    partition overwrites), and a file someone else deleted rows of counts high, so the
    check against Kafka fails loudly rather than passing wrongly."""
    from pyiceberg.expressions import And, GreaterThanOrEqual, LessThan, Or

    from kafkalake.catalog.config import catalog_config, open_catalog

    hours = sorted(hours)
    counts = dict.fromkeys((h.key for h in hours), 0)
    if not hours:
        return counts
    loaded = open_catalog(settings).load_table(f"{catalog_config(settings).namespace}.{table}")
    terms = [And(GreaterThanOrEqual("timestamp", h.start.isoformat()), LessThan("timestamp", h.end.isoformat()))
             for h in hours]
    condition = terms[0]
    for term in terms[1:]:
        condition = Or(condition, term)
    for task in loaded.scan(row_filter=condition).plan_files():
        hour = Hour.of(datetime.fromtimestamp(int(task.file.partition[0]) * 3600, UTC))
        if hour.key in counts:
            counts[hour.key] += int(task.file.record_count)
    return counts


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


def closed_cutoff(settings: Settings, stream: StreamConfig) -> datetime:
    """:func:`kafkalake.stream.watermark.closed_before` (watermark minus grace), as a backfill refusal
    when the stream has not committed anything yet."""
    from kafkalake.stream.watermark import StreamNotStarted, closed_before

    try:
        return closed_before(settings, stream)
    except StreamNotStarted:
        raise BackfillError(f"stream {stream.name!r} has not committed a batch yet, so no hour is known to be "
                            f"closed; start it first (`kafkalake stream run {stream.name}`)") from None


def data_table(settings: Settings, name: str) -> tuple[StreamConfig, TableRef]:
    """The stream and ref of a table a backfill may name: a data table, not a quarantine table."""
    from kafkalake.lake.tables import LakeError, resolve_table

    try:
        stream, ref = resolve_table(settings, name)
    except LakeError as exc:
        raise BackfillError(str(exc)) from None
    if ref.is_quarantine:
        first = next(iter(stream.tables.values()))
        raise BackfillError(f"{name} is a quarantine table: name a table of stream {stream.name!r} (e.g. {first}); "
                            f"its quarantine hours are replaced with it")
    return stream, ref


def plan_backfill(settings: Settings, request: BackfillRequest) -> BackfillPlan:
    """Check a request against the stream, Kafka and the tables; what a run would do, hour by hour.

    Refuses (one line): an unknown table; hours still open to the stream; hours Kafka no
    longer holds completely; offsets that do not cover the hours; an hour Kafka has no record
    of while the tables have rows for it (the backfill would drop them). Hours with nothing
    anywhere are skipped.
    """
    from kafkalake.kafka.topics import admin_client, list_offsets

    stream, ref = data_table(settings, request.table)
    hours = request.hours
    span = f"[{iso(request.start)}, {iso(request.end)})"
    cutoff = closed_cutoff(settings, stream)
    refuse_open(hours, cutoff, stream=stream.name, grace_minutes=stream.compaction.grace_minutes)

    admin = admin_client(settings.bootstrap_servers)
    latest = list_offsets(admin, stream.topics, which="latest", where=settings.bootstrap_servers)
    earliest = list_offsets(admin, stream.topics, which="earliest", where=settings.bootstrap_servers)
    boundaries = _offsets_at(admin, [h.start for h in hours] + [hours[-1].end], latest)
    ranges = hour_ranges(boundaries)
    gone = incomplete_hours(hours, _log_starts(settings, earliest, latest))
    if gone:
        key = min(gone)
        raise BackfillError(f"hour {key}: Kafka no longer holds all of its records ({gone[key]}); a backfill "
                            f"replaces whole hours only")

    start_json = end_json = None
    if request.mode == "offsets":
        start_json, end_json = _offsets_range(request, stream, earliest, latest, boundaries, span=span)

    table_rows = rows_by_hour(settings, ref.name, hours)
    quarantine_rows = rows_by_hour(settings, stream.quarantine_table, hours)
    planned = []
    for hour, hour_range in zip(hours, ranges, strict=True):
        in_kafka = records_in(hour_range)
        rows, bad = table_rows[hour.key], quarantine_rows[hour.key]
        action, why = "replace", ""
        if in_kafka == 0:
            if rows or bad:
                raise BackfillError(f"hour {hour.key}: Kafka has no records for it but {ref.name} has {rows:,} "
                                    f"rows and {stream.quarantine_table} {bad:,}; refusing to replace them with "
                                    f"nothing")
            action, why = "skip", "no records in Kafka, nothing in the tables"
        planned.append(HourPlan(
            hour=hour.key, action=action, why=why,
            kafka_offsets={tp: [a, b] for tp, (a, b) in hour_range.items()},
            offsets_in_range=in_kafka, table_rows=rows, quarantine_rows=bad,
        ))
    return BackfillPlan(
        table=ref.name, quarantine_table=stream.quarantine_table, stream=stream.name, fmt=ref.fmt or "parquet",
        mode=request.mode, start=iso(request.start), end=iso(request.end), closed_before=iso(cutoff),
        topics=list(stream.topics), hours=planned, starting_offsets=start_json, ending_offsets=end_json,
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
