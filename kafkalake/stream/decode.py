"""Kafka rows -> table rows and quarantine rows: THE decode path.

docs/architecture.md: One decode path; Every message names its writer schema; Nothing is
silently dropped.

Streaming ingest, backfill and migration all call :func:`decode`. It runs entirely in the
JVM: Spark's ``from_avro`` takes ``jsonFormatSchema`` as the *writer* schema and the option
``avroSchema`` as the *reader* schema, and resolves one writer per call. So every row is
routed by the schema id in its Confluent header to the ``from_avro`` of its own writer
version, with the subject's latest version as reader. The routing is a CASE per version in
one projection rather than a filter + union per version: a union would scan the Kafka batch
once per branch. A good row is decoded once: the body with an end marker appended, which the
decode must read back intact (:func:`_checked`).

A row that cannot be decoded is never dropped: it becomes a quarantine row (raw key/value,
topic/partition/offset/timestamp, reason code). Reason codes are those of the Python decoder
(:class:`kafkalake.wire.DecodeReason`):

* header: EMPTY (null/zero-length value), SHORT_HEADER, BAD_MAGIC;
* id: UNKNOWN_SCHEMA_ID (not registered), SCHEMA_MISMATCH (registered for another subject, or
  a version the reader cannot resolve);
* body: CORRUPT / TRUNCATED (``from_avro`` in PERMISSIVE mode failed; it is TRUNCATED when
  the body padded with zero bytes decodes, i.e. the bytes are a prefix of a valid record),
  TRAILING_BYTES (decodes, but leaves bytes unread).

PERMISSIVE mode returns an all-null struct for a bad record. The decodes here extend the
schemas by a trailing ``fixed`` field that only a successful decode fills, so a real record
is told apart without relying on fields that can never be null.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from kafkalake.errors import KafkalakeError
from kafkalake.wire.framing import HEADER_SIZE, DecodeReason

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame

    from kafkalake.schema.model import SchemaVersion
    from kafkalake.schema.registry import Registry


#: Columns every table row carries besides the reader schema's fields: the Kafka record's key,
#: headers and coordinates, and the writer schema it was decoded with.
META_COLUMNS = ("key", "headers", "schema_id", "schema_version", "topic", "partition", "offset", "timestamp")
#: The quarantine table's columns: the raw record, its coordinates and why it did not decode.
QUARANTINE_COLUMNS = ("topic", "partition", "offset", "timestamp", "key", "value", "headers", "schema_id", "reason")
#: Columns of :func:`decode`'s output besides the reader's fields and META_COLUMNS.
_DECODE_EXTRA = ("reason", "value")
_PADDING = bytes(256)
#: the trailing fields :func:`_checked` adds to the schemas it decodes with (never in a table)
END_FIELD, OK_FIELD = "__kafkalake_end", "__kafkalake_ok"
END_MARKER_SIZE = 16


class DecodePlanError(KafkalakeError):
    """The registry cannot back a decode plan for this subject."""


def new_end_marker(size: int = END_MARKER_SIZE) -> bytes:
    """Random bytes no shorter shift of which repeats them (see :func:`_checked`).

    A body followed by trailing bytes T reads the first ``size`` bytes of T + marker back;
    that equals the marker only if the marker repeats itself at a shift of len(T) (ruled out
    here) or if T starts with the marker itself. Drawn afresh for every plan, so no producer
    can know it: a chance of 2^-128 per record.
    """
    while True:
        marker = secrets.token_bytes(size)
        if all(marker[shift:] != marker[:size - shift] for shift in range(1, size)):
            return marker


@dataclass(frozen=True)
class WriterPlan:
    version: SchemaVersion
    #: why the reader cannot resolve this writer (None: it can)
    mismatch: str | None


@dataclass(frozen=True)
class DecodePlan:
    """What :func:`decode` needs from the registry, resolved once per query start."""

    subject: str
    reader: SchemaVersion
    writers: tuple[WriterPlan, ...]
    foreign_ids: frozenset[int]
    #: appended to every body for the decode; it must come back intact (:func:`_checked`)
    end_marker: bytes = field(default_factory=new_end_marker, repr=False)

    @property
    def reader_fields(self) -> tuple[str, ...]:
        import json

        return tuple(f["name"] for f in json.loads(self.reader.schema_json)["fields"])


def decode_plan(registry: Registry, subject: str, *, reader_version: int | None = None) -> DecodePlan:
    """Reader = the subject's latest version (or ``reader_version``); writers = all versions."""
    import json

    from kafkalake.schema.compatibility import compatibility_problems

    reader = registry.get(subject, reader_version) if reader_version else registry.latest(subject)
    reader_doc = json.loads(reader.schema_json)
    if reader_doc.get("type") != "record":
        raise DecodePlanError(f"subject {subject!r}: the reader schema must be a record to become a table")
    clash = sorted(set(f["name"] for f in reader_doc["fields"])
                   & set(META_COLUMNS + QUARANTINE_COLUMNS + (END_FIELD, OK_FIELD)))
    if clash:
        raise DecodePlanError(
            f"subject {subject!r}: field(s) {', '.join(clash)} clash with the table's Kafka columns "
            "(or the decode's marker fields); rename them"
        )
    writers = []
    subject_ids = set()
    for number in registry.versions(subject):
        version = registry.get(subject, number)
        subject_ids.add(version.schema_id)
        problems = compatibility_problems(
            reader.avro_schema, version.avro_schema, reader_label=reader.label, writer_label=version.label
        )
        mismatch = "; ".join(str(p) for p in problems) or None
        if not mismatch and json.loads(version.schema_json).get("type") != "record":
            mismatch = f"{version.label} is not a record"
        writers.append(WriterPlan(version=version, mismatch=mismatch))
    foreign = frozenset(v.schema_id for v in registry.all_versions() if v.schema_id not in subject_ids)
    return DecodePlan(subject=subject, reader=reader, writers=tuple(writers), foreign_ids=foreign)


def decode(raw: DataFrame, plan: DecodePlan) -> DataFrame:
    """Kafka source rows (key, value, [headers,] topic, partition, offset, timestamp) -> decoded rows.

    Pure DataFrame -> DataFrame: streaming, batch and tests feed it alike. A good row has the
    reader's fields, :data:`META_COLUMNS` and a null ``reason``; a quarantine row has the
    ``reason`` and the raw ``value``. :func:`table_rows` and :func:`quarantine_rows` split them
    into the two tables' columns.
    """
    from pyspark.sql import functions as F

    value = F.col("value")
    size = F.coalesce(F.length(value), F.lit(0))
    subject_ids = [w.version.schema_id for w in plan.writers]
    mismatched = [w.version.schema_id for w in plan.writers if w.mismatch] + sorted(plan.foreign_ids)
    readable = [w for w in plan.writers if not w.mismatch]

    # Stage 1: the header. A registered id is matched as its 5 header bytes (magic byte + id,
    # big-endian): one binary compare; only other ids are parsed (hex -> conv). An id that
    # does not fit an int (junk) is null and quarantined as UNKNOWN_SCHEMA_ID (a cast that
    # overflows would fail the query under ANSI mode). Every column is defined once and
    # referenced by name afterwards: an expression repeated in a CASE is generated (and run)
    # once per use, and whole-stage code over HotSpot's 8,000-bytecode limit runs interpreted.
    known = [*subject_ids, *sorted(plan.foreign_ids)]
    prefix = F.substring(value, 1, 5)
    schema_id = F.when(size < HEADER_SIZE, F.lit(None).cast("int"))
    for known_id in known:
        schema_id = schema_id.when(prefix == F.lit(bytearray(b"\x00" + known_id.to_bytes(4, "big"))), F.lit(known_id))
    schema_id = schema_id.otherwise(F.conv(F.hex(F.substring(value, 2, 4)), 16, 10).try_cast("int"))
    headers = F.col("headers") if "headers" in raw.columns else F.lit(None).cast(HEADERS_TYPE)
    staged = raw.select(
        "key", "value", headers.alias("headers"), "topic", "partition", "offset", "timestamp",
        schema_id.alias("schema_id"),
        F.expr("substring(value, 6)").alias("_body"),
    )
    sid_col = F.col("schema_id")
    header_reason = (
        F.when(size == 0, F.lit(DecodeReason.EMPTY.value))
        .when(size < HEADER_SIZE, F.lit(DecodeReason.SHORT_HEADER.value))
        .when(F.substring(value, 1, 1) != F.lit(bytearray(1)), F.lit(DecodeReason.BAD_MAGIC.value))
        .when(sid_col.isin(mismatched) if mismatched else F.lit(False), F.lit(DecodeReason.SCHEMA_MISMATCH.value))
        .when(sid_col.isNull() | ~sid_col.isin(subject_ids), F.lit(DecodeReason.UNKNOWN_SCHEMA_ID.value))
    )
    staged = staged.select("*", header_reason.alias("_header_reason"))

    # Stage 2: the body. Decoded, checked: ``_body_reason`` (null: it lands) and ``_record``.
    keep = ["key", "value", "headers", "topic", "partition", "offset", "timestamp", "schema_id", "_header_reason",
            "_body"]
    staged = _checked(staged, plan, readable, keep)

    # Stage 3: one reason, one record, the table's columns.
    reason = F.coalesce(F.col("_header_reason"), F.col("_body_reason"))
    version_of = F.create_map(
        *[x for w in plan.writers for x in (F.lit(w.version.schema_id), F.lit(w.version.version))]
    )
    staged = staged.select(*[c for c in staged.columns if c != "_record"], reason.alias("reason"),
                           F.when(reason.isNull(), F.col("_record")).alias("_record"))
    quarantined = F.col("reason").isNotNull()
    fields = [F.col("_record")[name].alias(name) for name in plan.reader_fields]
    return staged.select(
        *fields,
        "key", "headers",
        F.col("schema_id"),
        version_of[F.col("schema_id")].alias("schema_version"),
        "topic", "partition", "offset", "timestamp",
        "reason",
        F.when(quarantined, F.col("value")).alias("value"),
    )


#: Spark's type of the Kafka source's ``headers`` column (``includeHeaders``)
HEADERS_TYPE = "array<struct<key:string,value:binary>>"


def table_rows(decoded: DataFrame, plan: DecodePlan) -> DataFrame:
    """The rows of the stream's table: decoded records, reader fields then META_COLUMNS."""
    from pyspark.sql import functions as F

    return decoded.where(F.col("reason").isNull()).select(*plan.reader_fields, *META_COLUMNS)


def quarantine_rows(decoded: DataFrame) -> DataFrame:
    """The rows of the quarantine table: what did not decode, raw, with its reason."""
    from pyspark.sql import functions as F

    return decoded.where(F.col("reason").isNotNull()).select(*QUARANTINE_COLUMNS)


def _with_fixed_field(schema_json: str, name: str, size: int) -> str:
    """The record schema with one more field at its end: an Avro ``fixed`` of ``size`` bytes.

    Avro's binary encoding of a record is its fields' encodings one after the other, so that
    field is read from the bytes right after the record's own.
    """
    import json

    doc = json.loads(schema_json)
    doc["fields"] = [*doc["fields"], {"name": name, "type": {"type": "fixed", "name": f"{name}_{size}", "size": size}}]
    return json.dumps(doc)


def _checked(staged: DataFrame, plan: DecodePlan, readable: list[WriterPlan], keep: list[str]) -> DataFrame:
    """Decode and check every routed body: ONE ``from_avro`` per good row. Adds ``_body_reason``
    (null: it lands) and ``_record`` (the reader's fields).

    The body is decoded with the plan's end marker appended, the writer schema and the reader
    schema each extended by a trailing ``fixed`` field of the marker's size. The record is good
    exactly when that field comes back as the marker: the decode then consumed the body to its
    last byte and not one byte further. A body with bytes left over puts them into the field,
    which then holds other bytes (TRAILING_BYTES); a body too short for its record eats into the
    marker, and the field runs past the end (a failed decode: the field is null, as is every
    other). So no size arithmetic, no re-encoding, no per-version required fields: any writer
    the reader resolves, promotions included, and a record of nullable fields is never taken
    for a failed decode.

    Only a failed decode is decoded again, to tell why: TRUNCATED when the body padded with zero
    bytes decodes (the bytes are a prefix of a valid record), else CORRUPT. That decode extends
    the writer by a zero-byte ``fixed`` field, non-null exactly when the decode succeeded.
    """
    from pyspark.sql import functions as F
    from pyspark.sql.avro.functions import from_avro

    body = F.col("_body")
    sid = F.col("schema_id")
    routed = F.col("_header_reason").isNull()
    marker = plan.end_marker
    reader_marked = _with_fixed_field(plan.reader.schema_json, END_FIELD, len(marker))

    def by_writer(make: Any) -> Column:
        """CASE schema_id WHEN w THEN make(w) ... for the readable writers (null otherwise)."""
        case = None
        for w in readable:
            value = make(w)
            case = (
                F.when(sid == w.version.schema_id, value)
                if case is None
                else case.when(sid == w.version.schema_id, value)
            )
        return case

    def marked(w: WriterPlan) -> Column:
        data = F.concat(body, F.lit(bytearray(marker)))
        if w.version.schema_id == plan.reader.schema_id:  # no resolution needed
            return from_avro(data, reader_marked, {"mode": "PERMISSIVE"})
        return from_avro(data, _with_fixed_field(w.version.schema_json, END_FIELD, len(marker)),
                         {"avroSchema": reader_marked, "mode": "PERMISSIVE"})

    def decodes(data: Column) -> Column:
        return by_writer(lambda w: from_avro(data, _with_fixed_field(w.version.schema_json, OK_FIELD, 0),
                                             {"mode": "PERMISSIVE"})[OK_FIELD].isNotNull())

    end = F.col("_record")[END_FIELD]

    staged = staged.select(*keep, F.when(routed, by_writer(marked)).alias("_record"))
    staged = staged.select(
        *keep, "_record", (routed & F.coalesce(end == F.lit(bytearray(marker)), F.lit(False))).alias("_good")
    )
    # CASE branches run only when reached: good rows never get past the first one
    body_reason = (
        F.when(F.col("_good") | ~routed, F.lit(None).cast("string"))
        .when(end.isNotNull(), F.lit(DecodeReason.TRAILING_BYTES.value))
        .when(decodes(F.concat(body, F.lit(bytearray(_PADDING)))), F.lit(DecodeReason.TRUNCATED.value))
        .otherwise(F.lit(DecodeReason.CORRUPT.value))
    )
    return staged.select(*keep[:-1], body_reason.alias("_body_reason"), "_record")


def decode_plan_summary(plan: DecodePlan) -> dict[str, Any]:
    """What the job logs at start: which ids it decodes and which it quarantines."""
    return {
        "subject": plan.subject,
        "reader": {"version": plan.reader.version, "schema_id": plan.reader.schema_id},
        "writers": {w.version.schema_id: w.version.version for w in plan.writers if not w.mismatch},
        "mismatched": {w.version.schema_id: w.mismatch for w in plan.writers if w.mismatch},
        "foreign_ids": sorted(plan.foreign_ids),
    }
