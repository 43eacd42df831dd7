"""Backfill: replace whole closed hours of a stream's tables from Kafka, verified, in one commit per table.

A backfill is what an operator runs when a table is wrong or incomplete for some hours: data
files were lost or deleted, the stream was down past a gap, a decode bug was fixed. It is a
batch job over a bounded range and reuses the pieces the stream and compaction use, so there
is one way each thing is done:

* **read** — Spark's Kafka source in batch mode, with the record headers (as the stream reads
  them). By time: ``startingTimestamp`` / ``endingTimestamp`` (ms; Kafka's time index turns
  them into per-partition offsets, the end is exclusive). By offsets: ``startingOffsets`` /
  ``endingOffsets`` JSON. ``failOnDataLoss`` stays on: offsets that vanish mid-read fail the
  job. The range is read once, decoded once and cached (memory and disk).
* **decode** — :func:`kafkalake.stream.decode.decode`, the stream's own transform
  (docs/architecture.md: One decode path). Undecodable records become rows of the stream's
  quarantine table exactly as in the stream (docs/architecture.md: Nothing is silently dropped).
* **check against Kafka, before anything is written** — for every hour, table rows +
  quarantine rows == the number of Kafka offsets in the hour, each (topic, partition, offset)
  once. Otherwise nothing is published and the run fails with one line.
* **publish** — :func:`kafkalake.lake.rewrite.replace_hours` (docs/architecture.md: Rewrites
  are verified, then committed once): the table's changed hours are written to a branch,
  verified per hour (row count + order-independent checksum), then cherry-picked onto ``main``
  as one commit; then the quarantine table's hours the same way. An hour whose checksum
  already equals the table's is not rewritten; when no hour changed, no commit is made, so a
  second identical backfill changes nothing.

**Hours are the unit.** ``start`` and ``end`` are ISO timestamps on whole hours, ``end``
exclusive (like Kafka's ``endingTimestamp``): ``--start 05:00Z --end 07:00Z`` replaces hours 05
and 06. Only hours the stream has closed (its watermark minus ``compaction.grace_minutes``,
:func:`kafkalake.stream.watermark.closed_before`) may be replaced: an hour still open could get
more records after the backfill read it; it is refused with the hour and the watermark.

**Offsets mode** (``starting_offsets`` / ``ending_offsets``, ``{"topic": {"0": 123, ...}}``,
-2 = earliest, -1 = latest) still replaces whole hours: the request names the hours too, and
the offset range must cover them completely on every partition of every topic (Kafka's time
index says where each hour starts and ends). A range that covers only part of an hour is
refused: publishing it would drop the rest of the hour. Records in the range that belong to
other hours are not touched (counted as ``records_outside_hours`` in the report).

**Kafka must still hold the hours.** A partition whose log start moved (retention,
``delete_records``) may have lost records of an hour; such hours are refused — a partial
hour must never replace a complete one.

**Empty hours.** A dynamic overwrite replaces only the hours its rows fall in. An hour with no
decodable record in Kafka while the table has rows for it is refused (replacing them with
nothing would lose rows). An hour that has no quarantine rows any more (the records decode
now) while the quarantine table still has some gets those deleted in a commit of their own,
after the table's publish: in between its records are in both tables, never in neither.

**Verification after the run.** The job's JSON report has per hour the rows published, the
quarantined ones, the Kafka offsets of the hour and their count. :func:`verify_report` (the
DAG's ``verify`` task, and ``kafkalake backfill``) asks Kafka again and the tables' metadata,
and checks ``rows + quarantined == offsets in range`` for every hour.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from kafkalake.errors import ExitCode
from kafkalake.lake.tables import Hour, LakeError
from kafkalake.stream.config import NAME_RE

#: a guard against typos (2016 for 2026): at most one month per backfill
MAX_HOURS = 24 * 31
#: a table name (``fridge``, ``fridge_avro``; never a path)
TABLE_RE = NAME_RE
EARLIEST, LATEST = -2, -1


class BackfillError(LakeError):
    """A backfill was refused or failed; nothing of it was published."""

    exit_code = ExitCode.BACKFILL


class BackfillVerificationError(BackfillError):
    """The hours do not add up with Kafka's offsets (table rows + quarantine rows)."""

    exit_code = ExitCode.BACKFILL_VERIFY


Offsets = dict[str, dict[str, int]]  # {"topic": {"partition": offset}}


@dataclass(frozen=True)
class BackfillRequest:
    """What an operator asked for, validated without any I/O."""

    table: str
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
        """``timestamps`` or ``offsets``: how Kafka is read."""
        return "offsets" if self.starting_offsets is not None else "timestamps"

    def job_args(self, *, report: Path | str | None = None, dry_run: bool = False) -> list[str]:
        """Arguments of ``spark_jobs/backfill.py`` (round-trips through its parser)."""
        args = [self.table, "--start", iso(self.start), "--end", iso(self.end)]
        if self.starting_offsets is not None and self.ending_offsets is not None:
            args += ["--starting-offsets", json.dumps(self.starting_offsets, separators=(",", ":"), sort_keys=True),
                     "--ending-offsets", json.dumps(self.ending_offsets, separators=(",", ":"), sort_keys=True)]
        args += ["--report", str(report)] if report else []
        args += ["--dry-run"] if dry_run else []
        return args


def iso(moment: datetime) -> str:
    """``2026-11-24T05:00:00Z``: how reports and messages write a moment."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


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
    from kafkalake.kafka.topics import TopicError, validate_topic_name

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


def parse_request(table: object, *, start: object, end: object,
                  starting_offsets: object = None, ending_offsets: object = None) -> BackfillRequest:
    """Params (CLI, DAG form, job arguments) -> a request, or one clear line saying what is wrong."""
    if not isinstance(table, str) or not TABLE_RE.match(table):
        raise BackfillError(f"table {table!r} is not a table name: a table of a stream in streams.yaml "
                            f"(e.g. fridge, fridge_avro)")
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
        if not all(given):
            raise BackfillError("give both starting_offsets and ending_offsets (or neither, to backfill by time)")
        start_offsets = parse_offsets("starting_offsets", starting_offsets, sentinel=EARLIEST)
        end_offsets = parse_offsets("ending_offsets", ending_offsets, sentinel=LATEST)
        if set(start_offsets) != set(end_offsets):
            raise BackfillError(f"starting_offsets names topics {sorted(start_offsets)}, ending_offsets "
                                f"{sorted(end_offsets)}: name the same topics in both")
    return BackfillRequest(table, first, stop, start_offsets, end_offsets)


def hour_ranges(boundaries: list[dict[str, int]]) -> list[dict[str, tuple[int, int]]]:
    """Per-partition offsets at consecutive hour boundaries -> each hour's ``[first, end)``."""
    return [{tp: (boundaries[i][tp], boundaries[i + 1][tp]) for tp in sorted(boundaries[i])}
            for i in range(len(boundaries) - 1)]


def records_in(ranges: Mapping[str, tuple[int, int] | list[int]]) -> int:
    return sum(max(0, end - first) for first, end in ranges.values())


def open_hours(hours: list[Hour], cutoff: datetime) -> list[Hour]:
    """Hours that end after ``cutoff`` (the watermark minus grace): the stream may still write them."""
    return [h for h in hours if h.end > cutoff]


def refuse_open(hours: list[Hour], cutoff: datetime, *, stream: str, grace_minutes: float) -> None:
    still_open = open_hours(hours, cutoff)
    if still_open:
        first = still_open[0]
        more = f" (and {len(still_open) - 1} later hour(s))" if len(still_open) > 1 else ""
        raise BackfillError(
            f"hour {first.key}{more} is still open to stream {stream!r}: its watermark minus "
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


def safe_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text)[:120]


@dataclass(frozen=True)
class HourCount:
    """What a backfill read of one hour: decodable rows, quarantined records, distinct
    (topic, partition, offset) coordinates among them."""

    rows: int
    quarantined: int
    coordinates: int

    @property
    def records(self) -> int:
        return self.rows + self.quarantined


def count_problems(offsets: Mapping[str, int], counts: Mapping[str, HourCount]) -> list[str]:
    """Per hour (key -> offsets in range per Kafka's time index): rows + quarantined must equal
    the offsets, each coordinate once (docs/architecture.md: Exactly once into the lake)."""
    problems = []
    for key in sorted(offsets):
        got = counts.get(key, HourCount(0, 0, 0))
        if got.records != offsets[key]:
            problems.append(f"{key}: {got.rows:,} rows + {got.quarantined:,} quarantined != "
                            f"{offsets[key]:,} offsets in range")
        elif got.coordinates != got.records:
            problems.append(f"{key}: {got.records:,} records read but {got.coordinates:,} distinct "
                            f"(topic, partition, offset)")
    return problems
