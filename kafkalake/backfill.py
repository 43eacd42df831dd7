"""Backfill: replace whole closed hours of a table from Kafka (or rebuild them from landing).

A backfill is what an operator runs when the lake is wrong or incomplete for some hours: a
lake version folder was lost, the stream was down past a gap, a decode bug was fixed. It is
a batch job over a bounded range, and it reuses every piece the stream and compaction use,
so there is one way each thing is done:

* **read** — Spark's Kafka source in batch mode. By time: ``startingTimestamp`` /
  ``endingTimestamp`` (ms; Kafka's time index turns them into per-partition offsets, the end
  is exclusive). By offsets: ``startingOffsets`` / ``endingOffsets`` JSON. ``failOnDataLoss``
  stays on: offsets that vanish mid-read fail the job. The range is read once, decoded once
  and cached (memory and disk); each hour's write, its quarantine and the counts read the cache.
* **decode** — :func:`kafkalake.ingest.decode`, the stream's own transform (invariant 1).
  Undecodable records become quarantine rows exactly as in the stream (invariant 3).
* **publish** — :class:`kafkalake.compaction.Compactor`: each hour is written to a new
  version folder, verified (row count + order-independent checksum of what was read, observed
  during the write) and all hours are published by one atomic manifest replace (origin
  ``backfill``). A crash leaves the old or the new state; the next lake run finishes or rolls
  back (journal). One writer per table (``lock_table``), as for compaction.

**Hours are the unit.** ``start`` and ``end`` are ISO timestamps on whole hours, ``end``
exclusive (like Kafka's ``endingTimestamp``): ``--start 05:00Z --end 07:00Z`` replaces hours 05
and 06. Only hours the stream has closed (its watermark minus ``compaction.grace_minutes``,
:func:`kafkalake.compaction.closed_before`) may be replaced: an hour still open could get
more records after the backfill read it; it is refused with the hour and the watermark.

**Offsets mode** (``starting_offsets`` / ``ending_offsets``, ``{"topic": {"0": 123, ...}}``,
-2 = earliest, -1 = latest) still replaces whole hours: the request names the hours too, and
the offset range must cover them completely on every partition of every topic (Kafka's time
index says where each hour starts and ends). A range that covers only part of an hour is
refused: publishing it would drop the rest of the hour. Records in the range that belong to
other hours are not touched (counted as ``records_outside_hours`` in the report).

**Kafka must still hold the hours.** A partition whose log start moved (retention,
``delete_records``) may have lost records of an hour; such hours are refused for a Kafka
backfill (rebuild them from landing instead) — a partial hour must never replace a complete one.

**Landing rebuild** (``source=landing``) rewrites the hours from the landing sink, like
compaction but forced even when unchanged. Hours without landing files, or whose landing files
retention already deleted, are refused.

**Quarantine.** Bad records read by a Kafka backfill go, per hour, to
``$LAKE/quarantine/<fmt>/<table>/dt=…/hour=…/run=<run id>/`` (Parquet: Kafka coordinates,
reason code, raw key/value bytes). The manifest entry of the hour names that folder
(``quarantine``); a re-run replaces it (older run folders of a published hour are removed
after the publish), so running the same backfill twice leaves the same lake *and* the same
quarantine. The landing sink's own ``zone=quarantine`` rows (the stream's view) are untouched.

An hour whose records are *all* undecodable publishes no lake version (its table rows are
none either way; the hour stays out of the manifest, its quarantine folder is kept). This also
steers clear of a Spark 4.1 behaviour: an ``observe`` before ``repartition`` +
``sortWithinPartitions`` over zero rows yields no observed row (``Observation.get`` fails), so
the Compactor cannot write an empty hour of a table with ``compaction.sort_by``.

**Verification.** The job's JSON report has per hour: rows published, quarantined, the
Kafka offsets of the hour and their count. :func:`verify_report` (the DAG's ``verify`` task,
and ``kafkalake backfill``) asks Kafka again and checks ``rows + quarantined == offsets in
range`` for every hour, and that the manifest publishes what the report says.

**Output files per hour:** ``max(1, ceil(estimated bytes / compaction.target_file_mb))``,
the estimate being the hour's current lake bytes (the best predictor of its compacted size),
else its landing bytes, else the table's mean lake bytes per row times the records in Kafka.
"""

from __future__ import annotations

import json
import math
import re
import shutil
import time
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping

from kafkalake.config import Settings
from kafkalake.lake import Hour, LakeError, TablePaths, fingerprint, landing_hours, read_manifest
from kafkalake.spark import kafka_reader
from kafkalake.streams import FORMATS, StreamConfig

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

SOURCES = ("kafka", "landing")
#: a guard against typos (2016 for 2026): at most one month per backfill
MAX_HOURS = 24 * 31
#: a table name: a stream name, optionally ``.parquet`` / ``.avro`` (never a path)
TABLE_RE = re.compile(r"^[a-z][a-z0-9_]{0,62}(\.(" + "|".join(FORMATS) + r"))?$")
#: JSON-schema pattern of an hour param (the DAG's form); alignment is checked by Hour.parse
HOUR_PATTERN = r"^\d{4}-\d{2}-\d{2}T\d{2}(:00(:00)?)?(Z|[+-]00:?00)?$"
EARLIEST, LATEST = -2, -1
MIB = 1024 * 1024


class BackfillError(LakeError):
    """A backfill was refused or failed; nothing of it was published."""

    exit_code = 8


class BackfillVerificationError(BackfillError):
    """The published hours do not add up with Kafka's offsets and the quarantine."""

    exit_code = 9


# --- the request (pure) -----------------------------------------------------------------------

Offsets = dict[str, dict[str, int]]  # {"topic": {"partition": offset}}


@dataclass(frozen=True)
class BackfillRequest:
    """What an operator asked for, validated without any I/O."""

    table: str
    source: str
    start: datetime  # first hour replaced
    end: datetime  # exclusive: the first hour not replaced
    starting_offsets: Offsets | None = None
    ending_offsets: Offsets | None = None

    @property
    def hours(self) -> list[Hour]:
        count = int((self.end - self.start).total_seconds() // 3600)
        return [Hour.of(self.start + timedelta(hours=i)) for i in range(count)]

    @property
    def mode(self) -> str:
        """``timestamps`` | ``offsets`` (Kafka) or ``landing``."""
        if self.source == "landing":
            return "landing"
        return "offsets" if self.starting_offsets is not None else "timestamps"

    def job_args(self, *, report: Path | str | None = None, dry_run: bool = False) -> list[str]:
        """Arguments of ``spark_jobs/backfill.py`` (round-trips through its parser)."""
        args = [self.table, "--source", self.source, "--start", iso(self.start), "--end", iso(self.end)]
        if self.starting_offsets is not None and self.ending_offsets is not None:
            args += ["--starting-offsets", json.dumps(self.starting_offsets, separators=(",", ":"), sort_keys=True),
                     "--ending-offsets", json.dumps(self.ending_offsets, separators=(",", ":"), sort_keys=True)]
        args += ["--report", str(report)] if report else []
        args += ["--dry-run"] if dry_run else []
        return args


def iso(moment: datetime) -> str:
    """``2026-11-24T05:00:00Z``: how reports and messages write a moment."""
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_boundary(name: str, value: object) -> datetime:
    """An ISO timestamp on a whole hour (``2026-11-24T05:00Z``, ``2026-11-24T05``) -> UTC."""
    if isinstance(value, datetime):
        value = value.isoformat()
    if not isinstance(value, str) or not value.strip():
        raise BackfillError(f"{name} is required: an ISO timestamp on a whole hour, e.g. 2026-11-24T05:00Z")
    try:
        return Hour.parse(value.strip()).start
    except LakeError as exc:
        raise BackfillError(f"{name}: {exc}") from None


def parse_offsets(name: str, value: object, *, sentinel: int) -> Offsets:
    """``{"topic": {"0": 123}}`` (a dict or its JSON); ``sentinel`` (-2 earliest for the start,
    -1 latest for the end) is the only negative offset allowed."""
    from kafkalake.topics import TopicError, validate_topic_name

    word = "earliest" if sentinel == EARLIEST else "latest"
    example = '{"fridge-events": {"0": 1200, "1": 1180}}'
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as exc:
            raise BackfillError(f"{name} is not JSON ({exc.msg} at char {exc.pos}); write it like {example}") from None
    if not isinstance(value, dict) or not value:
        raise BackfillError(f"{name} must be an object of topic -> {{partition: offset}}, like {example}")
    out: Offsets = {}
    for topic, parts in value.items():
        try:
            validate_topic_name(str(topic))
        except TopicError as exc:
            raise BackfillError(f"{name}: {exc}") from None
        if not isinstance(parts, dict) or not parts:
            raise BackfillError(f"{name}: topic {topic!r} needs {{partition: offset}}, like {example}")
        out[topic] = {}
        for partition, offset in parts.items():
            if not str(partition).isdigit():
                raise BackfillError(f"{name}: partition {partition!r} of {topic!r} is not a partition number")
            if isinstance(offset, bool) or not isinstance(offset, int) or (offset < 0 and offset != sentinel):
                raise BackfillError(f"{name}: offset {offset!r} of {topic}-{partition} must be a whole number >= 0 "
                                    f"(or {sentinel} for {word})")
            out[topic][str(int(partition))] = offset
    return out


def parse_request(table: object, *, source: object = "kafka", start: object, end: object,
                  starting_offsets: object = None, ending_offsets: object = None) -> BackfillRequest:
    """Params (CLI, DAG form, job arguments) -> a request, or one clear line saying what is wrong."""
    if not isinstance(table, str) or not TABLE_RE.match(table):
        raise BackfillError(f"table {table!r} is not a table name: a stream name from streams.yaml, "
                            f"optionally with .{' or .'.join(FORMATS)} (e.g. fridge, fridge.avro)")
    if source not in SOURCES:
        raise BackfillError(f"source {source!r} must be one of {', '.join(SOURCES)}")
    first, stop = parse_boundary("start", start), parse_boundary("end", end)
    if stop <= first:
        raise BackfillError(f"end {iso(stop)} is not after start {iso(first)}: the range [start, end) "
                            f"must hold at least one whole hour (end is exclusive)")
    hours = int((stop - first).total_seconds() // 3600)
    if hours > MAX_HOURS:
        raise BackfillError(f"{hours} hours requested ({iso(first)} .. {iso(stop)}); at most {MAX_HOURS} per backfill: "
                            f"split the range")
    given = (starting_offsets not in (None, "", {}), ending_offsets not in (None, "", {}))
    start_offsets = end_offsets = None
    if any(given):
        if source != "kafka":
            raise BackfillError("starting_offsets / ending_offsets are for source kafka; a landing rebuild reads "
                                "the landing sink")
        if not all(given):
            raise BackfillError("give both starting_offsets and ending_offsets (or neither, to backfill by time)")
        start_offsets = parse_offsets("starting_offsets", starting_offsets, sentinel=EARLIEST)
        end_offsets = parse_offsets("ending_offsets", ending_offsets, sentinel=LATEST)
        if set(start_offsets) != set(end_offsets):
            raise BackfillError(f"starting_offsets names topics {sorted(start_offsets)}, ending_offsets "
                                f"{sorted(end_offsets)}: name the same topics in both")
    return BackfillRequest(table, str(source), first, stop, start_offsets, end_offsets)


# --- planning helpers (pure) ------------------------------------------------------------------

def hour_ranges(boundaries: list[dict[str, int]]) -> list[dict[str, tuple[int, int]]]:
    """Per-partition offsets at consecutive hour boundaries -> each hour's ``[first, end)``."""
    return [{tp: (boundaries[i][tp], boundaries[i + 1][tp]) for tp in sorted(boundaries[i])}
            for i in range(len(boundaries) - 1)]


def records_in(ranges: Mapping[str, tuple[int, int] | list[int]]) -> int:
    return sum(max(0, end - first) for first, end in ranges.values())


def kafka_fingerprint(ranges: Mapping[str, tuple[int, int] | list[int]]) -> str:
    """Identity of a Kafka-sourced hour: its offsets (offsets are never reused in a partition)."""
    return "kafka:" + ",".join(f"{tp}={first}..{end}" for tp, (first, end) in sorted(ranges.items()))


def open_hours(hours: list[Hour], cutoff: datetime) -> list[Hour]:
    """Hours that end after ``cutoff`` (the watermark minus grace): the stream may still write them."""
    return [h for h in hours if h.end > cutoff]


def refuse_open(hours: list[Hour], cutoff: datetime, *, stream: str, fmt: str, grace_minutes: float) -> None:
    still_open = open_hours(hours, cutoff)
    if still_open:
        first = still_open[0]
        more = f" (and {len(still_open) - 1} later hour(s))" if len(still_open) > 1 else ""
        raise BackfillError(
            f"hour {first.key}{more} is still open to stream {stream!r}: its {fmt} sink's watermark minus "
            f"{grace_minutes:g} min grace is {iso(cutoff)}; backfill only hours ending by then "
            f"(hour {first.key} is closed once the stream has passed "
            f"{iso(first.end + timedelta(minutes=grace_minutes))})"
        )


def incomplete_hours(hours: list[Hour], log_starts: Mapping[str, tuple[int, datetime | None]]) -> dict[str, str]:
    """Hours Kafka may no longer hold completely: ``{hour key: why}``.

    ``log_starts``: ``{tp: (earliest offset, timestamp of the record there)}`` for partitions
    whose log start moved past offset 0 (timestamp None: every record is gone). Records before
    the log start have timestamps <= the earliest one left (LogAppendTime is monotonic per
    partition), so an hour starting at or before that timestamp may have lost records.
    """
    out: dict[str, str] = {}
    for hour in hours:
        for tp, (earliest, stamp) in sorted(log_starts.items()):
            if earliest > 0 and (stamp is None or hour.start <= stamp):
                left = f"the oldest left is from {iso(stamp)}" if stamp else "none are left"
                out[hour.key] = f"{tp}: offsets before {earliest} were deleted (retention), {left}"
                break
    return out


def check_cover(requested_first: Mapping[str, int], requested_end: Mapping[str, int],
                hours_first: Mapping[str, int], hours_end: Mapping[str, int], *, span: str) -> None:
    """The offset range must contain every record of the hours on every partition."""
    missing = sorted(set(hours_first) - set(requested_first))
    extra = sorted(set(requested_first) - set(hours_first))
    if missing:
        raise BackfillError(f"starting_offsets/ending_offsets leave out partition(s) {', '.join(missing)}: "
                            f"name every partition of the stream's topics (a backfill replaces whole hours)")
    if extra:
        raise BackfillError(f"partition(s) {', '.join(extra)} are not partitions of the stream's topics")
    for tp in sorted(hours_first):
        first, end = requested_first[tp], requested_end[tp]
        if end < first:
            raise BackfillError(f"{tp}: ending offset {end} is before starting offset {first}")
        if first > hours_first[tp] or end < hours_end[tp]:
            raise BackfillError(
                f"offsets {tp} {first}..{end} do not cover hours {span} fully: on {tp} those hours are offsets "
                f"{hours_first[tp]}..{hours_end[tp]}; widen the range (a partial hour would replace a whole one) "
                f"or backfill by time"
            )


def output_files(target_bytes: int, *, lake_bytes: int | None, landing_bytes: int, records: int,
                 bytes_per_row: float | None) -> int:
    """Files to write for one hour (see the module docstring)."""
    estimate = lake_bytes if lake_bytes else landing_bytes if landing_bytes else records * (bytes_per_row or 0)
    return max(1, math.ceil(estimate / target_bytes))


def safe_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text)[:120]


# --- the plan (reads Kafka, the checkpoint and the manifest; no Spark) ---------------------------

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
    from kafkalake.topics import record_timestamps

    moved = {tp: off for tp, off in earliest.items() if off > 0}
    probe = {tp: off for tp, off in moved.items() if off < latest.get(tp, off)}
    stamps = record_timestamps(settings.bootstrap_servers, probe) if probe else {}
    return {tp: (off, datetime.fromtimestamp(stamps[tp], timezone.utc) if stamps.get(tp) is not None else None)
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
    """:func:`kafkalake.compaction.closed_before` (watermark minus grace), with a backfill's hint
    when the stream has not committed anything yet."""
    from kafkalake.compaction import closed_before
    from kafkalake.stream_job import checkpoint_resume_offsets
    from kafkalake.streams import stream_paths

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
    from kafkalake.lake import resolve_table
    from kafkalake.topics import admin_client, list_offsets

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
        start_json, end_json = _as_json(first), _as_json(end)

    manifest = read_manifest(paths)
    landing = landing_hours(paths)
    published = [e for e in manifest["hours"].values() if e.get("rows")]
    bytes_per_row = (sum(e["bytes"] for e in published) / sum(e["rows"] for e in published)) if published else None
    target = int(stream.compaction.target_file_mb * MIB)
    planned = []
    for hour, hour_range in zip(hours, ranges):
        entry = manifest["hours"].get(hour.key)
        files = landing.get(hour, {})
        in_kafka = records_in(hour_range)
        complete = hour.key not in gone
        action, why = ("replace" if entry else "add"), ""
        if request.source == "kafka":
            if not complete:
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


# --- the run (Spark) --------------------------------------------------------------------------

def read_kafka(spark: SparkSession, settings: Settings, topics: list[str], *, plan: BackfillPlan,
               start: datetime, end: datetime) -> DataFrame:
    """The Kafka source rows of the plan's range, as a batch DataFrame (the stream's columns)."""
    reader = (
        kafka_reader(spark.read, settings.bootstrap_servers, topics)
        .option("failOnDataLoss", "true")
    )
    if plan.mode == "offsets":
        reader = (reader.option("startingOffsets", json.dumps(plan.starting_offsets))
                  .option("endingOffsets", json.dumps(plan.ending_offsets)))
    else:
        # a partition with no record at/after start reads nothing (latest..latest), not an error
        reader = (reader.option("startingTimestamp", str(int(start.timestamp() * 1000)))
                  .option("endingTimestamp", str(int(end.timestamp() * 1000)))
                  .option("startingOffsetsByTimestampStrategy", "latest"))
    return reader.load()


def quarantine_root(settings: Settings, paths: TablePaths) -> Path:
    return settings.lake_root / "quarantine" / paths.fmt / paths.name


#: what a quarantine row keeps: where it came from, why, and the bytes
QUARANTINE_FIELDS = ("topic", "partition", "offset", "timestamp", "schema_id", "reason", "raw_key", "raw_value",
                     "dt", "hour")


class _QuarantineLedger:
    """Quarantine folders a run writes, recorded in ``_journal/<run>.quarantine`` before the
    first byte, so a run killed before its publish is rolled back by the next backfill."""

    def __init__(self, settings: Settings, paths: TablePaths, run_id: str) -> None:
        self.root = settings.lake_root
        self.paths = paths
        self.marker = paths.journal_dir / f"{run_id}.quarantine"
        self.dirs: list[str] = []

    def add(self, rel: str) -> Path:
        self.dirs.append(rel)
        self.paths.journal_dir.mkdir(parents=True, exist_ok=True)
        self.marker.write_text(json.dumps(self.dirs))
        return self.root / rel

    def roll_back(self) -> None:
        for rel in self.dirs:
            shutil.rmtree(self.root / rel, ignore_errors=True)
        self.marker.unlink(missing_ok=True)

    def done(self) -> None:
        self.marker.unlink(missing_ok=True)

    @staticmethod
    def recover(settings: Settings, paths: TablePaths) -> list[str]:
        """Delete quarantine folders of dead runs the manifest does not reference."""
        notes = []
        referenced = {e["quarantine"]["dir"] for e in read_manifest(paths)["hours"].values() if e.get("quarantine")}
        for marker in sorted(paths.journal_dir.glob("*.quarantine")) if paths.journal_dir.is_dir() else []:
            dirs = json.loads(marker.read_text() or "[]")
            dropped = [d for d in dirs if d not in referenced]
            for rel in dropped:
                shutil.rmtree(settings.lake_root / rel, ignore_errors=True)
            notes.append(f"backfill run {marker.stem}: {len(dropped)} unpublished quarantine folder(s) removed")
            marker.unlink()
        return notes


def _hour_key_column():  # -> Column
    from pyspark.sql import functions as F

    return F.format_string("%sT%02d", F.col("dt"), F.col("hour"))


def _count_by_hour_zone(df: DataFrame) -> dict[tuple[str, str], int]:
    rows = df.groupBy(_hour_key_column().alias("key"), "zone").count().collect()
    return {(r["key"], r["zone"]): int(r["count"]) for r in rows}


def _landing_quarantine_counts(spark: SparkSession, paths: TablePaths, schema: Any, hours: list[str]) -> dict[str, int]:
    """Rows of the landing sink's quarantine zone per hour (the stream's bad records)."""
    from pyspark.sql import functions as F

    from kafkalake.ingest import QUARANTINE

    present = {h.key for h in landing_hours(paths, zone=QUARANTINE)} & set(hours)
    if not present:
        return {}
    reader = spark.read.schema(schema).format(paths.fmt)
    if paths.fmt == "avro":
        reader = reader.option("ignoreExtension", "true")
    df = (reader.load(str(paths.landing)).where(F.col("zone") == QUARANTINE)
          .where(_hour_key_column().isin(sorted(present))))
    return {key: n for (key, _zone), n in _count_by_hour_zone(df).items()}


def run_backfill(
    settings: Settings,
    request: BackfillRequest,
    *,
    dry_run: bool = False,
    spark_factory: Callable[[], SparkSession] | None = None,
    progress: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Plan, and unless ``dry_run`` replace, the requested hours. Returns the report (JSON-able).

    A dry run needs no Spark and takes no lock. A real run plans under the table's lock (what
    is true while it holds it), after rolling back what a dead run left behind.
    """
    started = time.monotonic()

    def planned(plan: BackfillPlan) -> dict[str, Any]:
        for line in plan.describe():
            progress(line)
        return {
            "table": plan.table, "format": plan.fmt, "source": plan.source, "mode": plan.mode, "dry_run": dry_run,
            "start": plan.start, "end": plan.end, "closed_before": plan.closed_before, "topics": plan.topics,
            "plan": [asdict(h) for h in plan.hours], "hours": [],
            "starting_offsets": plan.starting_offsets, "ending_offsets": plan.ending_offsets,
        }

    if dry_run:
        report = planned(plan_backfill(settings, request))
        report["seconds"] = round(time.monotonic() - started, 3)
        return report
    from kafkalake.compaction import lock_table, recover
    from kafkalake.lake import resolve_table

    if spark_factory is None:
        raise BackfillError("a backfill needs a Spark session factory")
    stream, paths = resolve_table(settings, request.table)
    lock = lock_table(paths)
    try:
        recovered = _QuarantineLedger.recover(settings, paths) + recover(paths)
        for note in recovered:
            progress(f"  recovered: {note}")
        plan = plan_backfill(settings, request)
        report = {**planned(plan), "recovered": recovered}
        report.update(_replace_hours(spark_factory(), settings, stream, paths, request, plan, progress))
    finally:
        lock.close()
    report["seconds"] = round(time.monotonic() - started, 3)
    return report


def _replace_hours(spark: SparkSession, settings: Settings, stream: StreamConfig, paths: TablePaths,
                   request: BackfillRequest, plan: BackfillPlan, progress: Callable[[str], None]) -> dict[str, Any]:
    """Read, decode, quarantine, then write + verify + publish through the Compactor.

    An hour whose records are all undecodable (quarantine only) publishes no lake version:
    its table rows are none either way, and Spark cannot observe an empty sorted write
    (see the module notes). Its quarantine folder is kept like the others.
    """
    from pyspark import StorageLevel
    from pyspark.sql import functions as F

    from kafkalake.compaction import Compactor, HourResult
    from kafkalake.ingest import LANDING, QUARANTINE, decode, decode_plan
    from kafkalake.lake import read_landing_hours
    from kafkalake.registry import Registry

    registry = Registry(settings.schemas_dir)
    compactor = Compactor(spark, stream, paths, registry.latest(stream.subject).schema_json, progress=progress)
    ledger = _QuarantineLedger(settings, paths, compactor.run_id)
    out: dict[str, Any] = {"run_id": compactor.run_id, "records_read": None, "records_outside_hours": 0}
    todo = plan.to_write
    decoded = None
    items, extra, rows_of, quarantine_only = [], {}, {}, {}
    try:
        landing = landing_hours(paths)
        if plan.source == "kafka":
            raw = read_kafka(spark, settings, plan.topics, plan=plan, start=request.start, end=request.end)
            decoded = decode(raw, decode_plan(registry, stream.subject)).persist(StorageLevel.MEMORY_AND_DISK)
            counts = _count_by_hour_zone(decoded)  # the one Kafka read; everything below reads the cache
            wanted = {h.hour for h in plan.hours}
            out["records_read"] = sum(counts.values())
            out["records_outside_hours"] = sum(n for (key, _z), n in counts.items() if key not in wanted)
            rows_of = {h.hour: counts.get((h.hour, LANDING), 0) for h in todo}
            quarantined = {h.hour: counts.get((h.hour, QUARANTINE), 0) for h in todo}
            for h in todo:
                if rows_of[h.hour] == 0 and h.lake_rows:
                    raise BackfillError(f"hour {h.hour}: every one of its {quarantined[h.hour]:,} records in Kafka is "
                                        f"undecodable now, but the lake has {h.lake_rows:,} rows; refusing to replace "
                                        f"them with nothing (check the schema registry)")
        else:
            quarantined = _landing_quarantine_counts(spark, paths, compactor.schema, [h.hour for h in todo])
        for h in todo:
            hour = Hour.parse(h.hour)
            q = quarantined.get(h.hour, 0)
            info: dict[str, Any] = {"kafka_offsets": h.kafka_offsets, "offsets_in_range": h.offsets_in_range,
                                    "kafka_complete": h.kafka_complete, "backfill_source": plan.source,
                                    "landing_fingerprint": fingerprint(landing.get(hour, {}))}
            if plan.source == "kafka":
                assert decoded is not None
                in_hour = decoded.where((F.col("dt") == hour.dt) & (F.col("hour") == hour.hour))
                info["quarantine"] = None
                if q:
                    rel = f"quarantine/{paths.fmt}/{paths.name}/{hour.folder}/run={compactor.run_id}"
                    folder = ledger.add(rel)
                    (in_hour.where(F.col("zone") == QUARANTINE).select(*QUARANTINE_FIELDS).repartition(1)
                     .write.mode("errorifexists").parquet(str(folder)))
                    info["quarantine"] = {"dir": rel, "rows": q}
                progress(f"  {h.hour}: {rows_of[h.hour] + q:,} records from Kafka ({q:,} quarantined); "
                         f"offsets in range: {h.offsets_in_range:,}")
                if rows_of[h.hour] == 0:
                    quarantine_only[h.hour] = {"hour": h.hour, "action": "quarantine only", "rows": 0,
                                               "output_files": 0, "dir": "", "checksum": "", "quarantined": q, **info}
                    continue
                source = in_hour.where(F.col("zone") == LANDING)
                source_fp = kafka_fingerprint(h.kafka_offsets)
                partitions = sum(1 for first, end in h.kafka_offsets.values() if end > first)
                result = HourResult(h.hour, partitions, 0, [])
            else:
                source = read_landing_hours(spark, paths, compactor.schema, hours=[hour])
                source_fp = info["landing_fingerprint"]
                files = landing.get(hour, {})
                result = HourResult(h.hour, len(files), sum(files.values()), sorted(files.values()))
            extra[h.hour] = {**info, "quarantined": q}
            items.append((hour, h.outputs, source_fp, source, result))
        results = compactor.run(items, origin="backfill", extra=extra) if items else []
    except BaseException:
        ledger.roll_back()
        raise
    finally:
        if decoded is not None:
            decoded.unpersist()
    ledger.done()  # committed: the manifest names the published hours' folders
    keep = {key: (info.get("quarantine") or {}).get("dir") for key, info in quarantine_only.items()}
    keep.update({r.hour: (extra[r.hour].get("quarantine") or {}).get("dir") for r in results})
    out["cleanup"] = compactor.cleanup() if results else {}
    out["cleanup"]["quarantine_folders_removed"] = _drop_superseded_quarantine(settings, paths, keep)
    out["hours"] = [{"hour": h.hour, "action": "skip", "why": h.why, "rows": 0, "quarantined": 0,
                     "offsets_in_range": h.offsets_in_range, "kafka_offsets": h.kafka_offsets,
                     "kafka_complete": h.kafka_complete} for h in plan.hours if h.action == "skip"]
    out["hours"] += list(quarantine_only.values())
    actions = {h.hour: h.action for h in plan.hours}
    out["hours"] += [{"action": actions[r.hour], **asdict(r), **extra[r.hour]} for r in results]
    out["hours"].sort(key=lambda h: h["hour"])
    out["totals"] = {
        "hours_replaced": len(results), "hours_quarantine_only": len(quarantine_only),
        "rows": sum(r.rows for r in results), "quarantined": sum(h["quarantined"] for h in out["hours"]),
        "offsets_in_range": sum(h["offsets_in_range"] for h in out["hours"]),
    }
    return out


def _drop_superseded_quarantine(settings: Settings, paths: TablePaths, keep: Mapping[str, str | None]) -> int:
    """After a run: the other quarantine run folders of its hours (``keep``: hour -> this run's folder)."""
    removed = 0
    for key, kept in keep.items():
        folder = quarantine_root(settings, paths) / Hour.parse(key).folder
        for run_dir in sorted(folder.glob("run=*")) if folder.is_dir() else []:
            if str(run_dir.relative_to(settings.lake_root)) != kept:
                shutil.rmtree(run_dir, ignore_errors=True)
                removed += 1
    return removed


# --- the report and its verification ----------------------------------------------------------

def summary_lines(report: dict[str, Any]) -> list[str]:
    """What the CLI prints after a run."""
    name = f"{report['table']} ({report['format']})"
    if report.get("dry_run"):
        todo = [h for h in report["plan"] if h["action"] != "skip"]
        return [f"{name}: dry run, would replace {len(todo)} hour(s) (~{sum(h['offsets_in_range'] for h in todo):,} "
                f"records in Kafka) from {report['source']}; nothing changed"]
    totals = report.get("totals") or {}
    lines = [f"{name}: {totals.get('hours_replaced', 0)} hour(s) replaced from {report['source']} "
             f"(run {report.get('run_id')}): {totals.get('rows', 0):,} rows, {totals.get('quarantined', 0):,} "
             f"quarantined; {report.get('seconds', 0):.1f} s"]
    for h in report.get("hours", []):
        if h["action"] == "skip":
            lines.append(f"  {h['hour']}: skipped ({h['why']})")
        elif h["action"] == "quarantine only":
            lines.append(f"  {h['hour']}: no decodable records; {h['quarantined']:,} quarantined, "
                         f"{h['offsets_in_range']:,} offsets in range; no lake version")
        else:
            lines.append(f"  {h['hour']}: {h['rows']:,} rows in {h['output_files']} file(s), {h['quarantined']:,} "
                         f"quarantined, {h['offsets_in_range']:,} offsets in range, checksum {h['checksum']}")
    if report.get("records_outside_hours"):
        lines.append(f"  {report['records_outside_hours']:,} records read belong to other hours: left untouched")
    return lines


def verify_report(settings: Settings, report: dict[str, Any]) -> list[str]:
    """Check a finished backfill against Kafka and the manifest; the lines say what was checked.

    Per replaced hour: the manifest publishes this run's version with the reported rows, and
    ``rows + quarantined == offsets in range``, the offsets asked from Kafka again now (a
    landing rebuild compares with the landing's quarantine; an hour Kafka no longer holds
    completely cannot be checked against it and says so). One offset = one record: true for
    the platform's (non-transactional) producers; transaction markers would count as offsets
    and make the check fail loudly, never pass wrongly. Raises
    :class:`BackfillVerificationError` listing every mismatch with its figures.
    """
    from kafkalake.lake import resolve_table
    from kafkalake.topics import admin_client, list_offsets

    name = f"{report['table']} ({report['format']})"
    if report.get("dry_run"):
        return [f"verify {name}: dry run, nothing published, nothing to verify "
                f"({len(report.get('plan', []))} hour(s) planned)"]
    stream, paths = resolve_table(settings, report["table"])
    manifest = read_manifest(paths)
    hours = [h for h in report.get("hours", []) if h["action"] != "skip"]
    lines, problems = [], []
    now: dict[str, int] = {}
    if hours:
        admin = admin_client(settings.bootstrap_servers)
        latest = list_offsets(admin, stream.topics, which="latest", where=settings.bootstrap_servers)
        keys = [Hour.parse(h["hour"]) for h in hours]
        moments = sorted({m for k in keys for m in (k.start, k.end)})
        at = dict(zip(moments, _offsets_at(admin, moments, latest)))
        now = {k.key: sum(max(0, at[k.end][tp] - at[k.start][tp]) for tp in latest) for k in keys}
    for h in hours:
        key = h["hour"]
        entry = manifest["hours"].get(key)
        if h["action"] == "quarantine only":
            rows = entry["rows"] if entry else 0
        elif entry is None or entry.get("run_id") != report["run_id"]:
            problems.append(f"{key}: the manifest publishes run {entry.get('run_id') if entry else None}, "
                            f"not this backfill's {report['run_id']}")
            continue
        else:
            rows = entry["rows"]
        if rows != h["rows"]:
            problems.append(f"{key}: the lake has {rows:,} rows, the job reported {h['rows']:,}")
            continue
        q = h["quarantined"]
        if not h.get("kafka_complete", True):
            lines.append(f"verify {key}: {rows:,} rows published, {q:,} quarantined; Kafka no longer holds "
                         f"the whole hour (retention): offsets check not possible")
            continue
        offsets = now[key]
        moved = f" (the job saw {h['offsets_in_range']:,})" if offsets != h["offsets_in_range"] else ""
        figure = f"{rows:,} rows == {offsets:,} offsets in range{moved} - {q:,} quarantined"
        if rows + q == offsets:
            lines.append(f"verify {key}: {figure}: ok")
        else:
            problems.append(f"{key}: {rows:,} rows + {q:,} quarantined != {offsets:,} offsets in range{moved}")
    for h in report.get("hours", []):
        if h["action"] == "skip":
            lines.append(f"verify {h['hour']}: skipped ({h['why']})")
    if problems:
        raise BackfillVerificationError(f"backfill {report.get('run_id')} of {name} does not add up in "
                                        f"{len(problems)} hour(s): " + "; ".join(problems))
    lines.append(f"verify {name}: {len(hours)} hour(s) of run {report['run_id']} add up with Kafka")
    return lines


def report_dir(settings: Settings) -> Path:
    return settings.state_dir / "reports" / "backfill"


def load_report(path: Path | str) -> dict[str, Any]:
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise BackfillError(f"no backfill report at {path}: did the backfill job run?") from None


def dag_job_args(settings: Settings, params: Mapping[str, Any], *, run_id: str,
                 progress: Callable[[str], None] = print) -> dict[str, Any]:
    """The backfill DAG's params -> the job's arguments and report path, after checking the
    request against the stream, Kafka and the lake (so a refusal fails the first task, not Spark)."""
    request = parse_request(
        params.get("table"), source=params.get("source") or "kafka", start=params.get("start"), end=params.get("end"),
        starting_offsets=params.get("starting_offsets"), ending_offsets=params.get("ending_offsets"),
    )
    dry_run = params.get("dry_run", True)
    if not isinstance(dry_run, bool):
        raise BackfillError(f"dry_run must be true or false, not {dry_run!r}")
    plan = plan_backfill(settings, request)
    for line in plan.describe():
        progress(line)
    report = report_dir(settings) / f"{safe_name(run_id)}.json"
    return {"args": request.job_args(report=report, dry_run=dry_run), "report": str(report), "table": request.table,
            "hours": [h.hour for h in plan.hours], "dry_run": dry_run}
