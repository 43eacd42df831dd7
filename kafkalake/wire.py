"""The Confluent wire format: how every Kafka message names the schema it was written with.

A payload is ``0x00`` (magic byte), the schema id as a 4-byte big-endian integer, then
the record in Avro binary encoding without any container header. Any Confluent-ecosystem
consumer (and Spark's ``from_avro`` after the 5 header bytes are cut off) can read it.

The decoder here is the Python path for tools and tests; the streaming path decodes in the
JVM. Both must agree on what is malformed, so every failure is a :class:`DecodeError` with
one reason code from :class:`DecodeReason` -- the code the quarantine zone records.
Before fastavro sees a body, the body is walked once against the writer schema with every
declared length and count checked against the bytes that are actually there: fastavro
trusts them, and an array of nulls declaring 2**31 items keeps it busy for minutes.
"""

from __future__ import annotations

import io
import struct
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING, Any, Callable, Mapping

from kafkalake.errors import KafkalakeError

if TYPE_CHECKING:
    from kafkalake.registry import Registry, SchemaVersion

MAGIC = 0
MAGIC_BYTE = b"\x00"
HEADER_SIZE = 5
MAX_SCHEMA_ID = 2**31 - 1
_HEADER = struct.Struct(">BI")

#: Nesting deeper than this (recursive schemas) is refused rather than risk RecursionError.
MAX_DEPTH = 100
#: Items that occupy no bytes (null, empty records) are capped per message: the count is
#: the only thing that bounds the work, and a corrupt count can be in the billions.
MAX_ZERO_WIDTH_ITEMS = 1 << 16


class DecodeReason(str, Enum):
    """Why a payload could not be decoded; stored as the quarantine reason code."""

    EMPTY = "EMPTY"
    SHORT_HEADER = "SHORT_HEADER"
    BAD_MAGIC = "BAD_MAGIC"
    UNKNOWN_SCHEMA_ID = "UNKNOWN_SCHEMA_ID"
    #: the id is registered but its records cannot be read as the decoder's reader schema
    #: (another subject, or a version the reader is not compatible with)
    SCHEMA_MISMATCH = "SCHEMA_MISMATCH"
    TRUNCATED = "TRUNCATED"
    CORRUPT = "CORRUPT"
    TRAILING_BYTES = "TRAILING_BYTES"


class DecodeError(KafkalakeError):
    """A payload that is not a readable record; ``reason`` says which way it is broken."""

    def __init__(self, reason: DecodeReason, message: str, *, schema_id: int | None = None) -> None:
        super().__init__(message)
        self.reason = DecodeReason(reason)
        self.message = message
        self.schema_id = schema_id

    def __repr__(self) -> str:
        return f"DecodeError({self.reason.value}, {self.message!r})"


class EncodeError(KafkalakeError):
    """A record that does not match the schema it is being written with."""


# --------------------------------------------------------------------------- framing


def frame(schema_id: int, avro_bytes: bytes) -> bytes:
    """Prefix Avro binary with the 5-byte Confluent header naming its writer schema."""
    if isinstance(schema_id, bool) or not isinstance(schema_id, int) or not 0 <= schema_id <= MAX_SCHEMA_ID:
        raise ValueError(f"schema id must be an integer in 0..{MAX_SCHEMA_ID}, got {schema_id!r}")
    return _HEADER.pack(MAGIC, schema_id) + bytes(avro_bytes)


def parse_header(payload: bytes | bytearray | memoryview | None) -> int:
    """The schema id a payload names; DecodeError (EMPTY, BAD_MAGIC, SHORT_HEADER) if it has none."""
    if payload is not None and not isinstance(payload, (bytes, bytearray, memoryview)):
        raise TypeError(f"a Kafka payload is bytes, not {type(payload).__name__}")
    if payload is None or len(payload) == 0:
        raise DecodeError(DecodeReason.EMPTY, "empty payload (a tombstone or an empty message) has no record")
    if payload[0] != MAGIC:
        raise DecodeError(
            DecodeReason.BAD_MAGIC,
            f"first byte is 0x{payload[0]:02x}, not the Confluent magic byte 0x00: "
            "the producer did not use the registry's wire format",
        )
    if len(payload) < HEADER_SIZE:
        raise DecodeError(
            DecodeReason.SHORT_HEADER,
            f"payload has {len(payload)} bytes, fewer than the {HEADER_SIZE}-byte header (magic + schema id)",
        )
    return int.from_bytes(payload[1:HEADER_SIZE], "big")


# --------------------------------------------------------------------------- encoding


def encode_body(schema: SchemaVersion | Mapping[str, Any], record: Mapping[str, Any], *, validate: bool = True) -> bytes:
    """Avro binary of ``record`` without a header (what Spark's ``from_avro`` reads).

    Validates first by default: fastavro's writer silently truncates 1.5 into an int field.
    """
    import fastavro
    from fastavro.validation import ValidationError
    from fastavro.validation import validate as validate_record

    parsed = _parsed(schema)
    if validate:
        try:
            validate_record(record, parsed, raise_errors=True)
        except ValidationError as exc:
            raise EncodeError(f"record does not match {_schema_label(schema)}: {' '.join(str(exc).split())}") from None
    buffer = io.BytesIO()
    try:
        fastavro.schemaless_writer(buffer, parsed, record)
    except (ValueError, TypeError, KeyError, AttributeError, OverflowError, struct.error) as exc:
        raise EncodeError(f"record does not match {_schema_label(schema)}: {exc}") from None
    return buffer.getvalue()


def encode(
    schema: SchemaVersion | Mapping[str, Any],
    record: Mapping[str, Any],
    *,
    schema_id: int | None = None,
    validate: bool = True,
) -> bytes:
    """A complete Kafka message value: header + Avro binary.

    Pass a registry :class:`SchemaVersion` (its id goes in the header) or a fastavro
    parsed schema together with ``schema_id``.
    """
    if schema_id is None:
        schema_id = getattr(schema, "schema_id", None)
        if schema_id is None:
            raise ValueError("encode() needs schema_id= when given a parsed schema instead of a SchemaVersion")
    return frame(schema_id, encode_body(schema, record, validate=validate))


def _parsed(schema: SchemaVersion | Mapping[str, Any]) -> Any:
    parsed = getattr(schema, "parsed", None)
    if parsed is not None:
        return parsed
    import fastavro

    return fastavro.parse_schema(dict(schema)) if isinstance(schema, Mapping) else fastavro.parse_schema(schema)


def _schema_label(schema: Any) -> str:
    label = getattr(schema, "label", None)
    if label:
        return str(label)
    if isinstance(schema, Mapping):
        return str(schema.get("name", "the schema"))
    return "the schema"


# --------------------------------------------------------------------------- decoding


@dataclass(frozen=True)
class DecodedMessage:
    """A decoded payload with the writer schema it named (quarantine and tools want both)."""

    schema_id: int
    writer: SchemaVersion
    record: Any


@dataclass(frozen=True)
class _WriterPlan:
    version: SchemaVersion
    scanner: _BodyScanner
    #: why this writer cannot be read as the decoder's reader schema (None: it can)
    mismatch: str | None


class Decoder:
    """Decode framed payloads: header -> writer schema by id -> resolution to the reader schema.

    The reader schema is the subject's latest version when the decoder is built (or
    ``reader_version``); without ``reader_subject`` records come back as written.
    Writer schemas are parsed once per id and cached; ids registered after the decoder
    was built are found on first use. Malformed input raises :class:`DecodeError` and
    nothing else. A broken registry folder raises SchemaError: that is not the
    payload's fault, and quarantining every message would hide it.
    """

    def __init__(
        self,
        registry: Registry,
        reader_subject: str | None = None,
        *,
        reader_version: int | None = None,
    ) -> None:
        self._registry = registry
        self._reader: SchemaVersion | None = None
        if reader_subject is not None:
            self._reader = (
                registry.get(reader_subject, reader_version)
                if reader_version is not None
                else registry.latest(reader_subject)
            )
        elif reader_version is not None:
            raise ValueError("reader_version needs reader_subject")
        self._plans: dict[int, _WriterPlan] = {}

    @property
    def reader(self) -> SchemaVersion | None:
        return self._reader

    def decode(self, payload: bytes | bytearray | memoryview | None) -> Any:
        """The record (a dict for record schemas) or DecodeError."""
        return self.decode_message(payload).record

    def decode_message(self, payload: bytes | bytearray | memoryview | None) -> DecodedMessage:
        """Like :meth:`decode`, also returning the schema id and writer version."""
        schema_id = parse_header(payload)
        assert payload is not None  # parse_header refused None
        plan = self._plan(schema_id)
        if plan.mismatch is not None:
            raise DecodeError(DecodeReason.SCHEMA_MISMATCH, plan.mismatch, schema_id=schema_id)
        body = bytes(payload[HEADER_SIZE:])
        plan.scanner.scan(body, schema_id=schema_id)
        return DecodedMessage(schema_id=schema_id, writer=plan.version, record=self._read(plan, body, schema_id))

    def _read(self, plan: _WriterPlan, body: bytes, schema_id: int) -> Any:
        import fastavro
        from fastavro.read import SchemaResolutionError

        buffer = io.BytesIO(body)
        reader_parsed = self._reader.parsed if self._reader is not None else None
        try:
            record = fastavro.schemaless_reader(buffer, plan.version.parsed, reader_parsed)
        except SchemaResolutionError as exc:
            raise DecodeError(
                DecodeReason.SCHEMA_MISMATCH,
                f"schema id {schema_id} ({plan.version.label}) cannot be resolved to {self._reader_label}: "
                + " ".join(str(exc).split()),
                schema_id=schema_id,
            ) from None
        except Exception as exc:  # the scan accepted it; anything fastavro still finds is corruption
            raise DecodeError(
                DecodeReason.CORRUPT,
                f"body does not decode as {plan.version.label}: {type(exc).__name__}: " + " ".join(str(exc).split()),
                schema_id=schema_id,
            ) from None
        if buffer.tell() != len(body):  # the scan guarantees this; keep fastavro honest
            raise DecodeError(
                DecodeReason.TRAILING_BYTES,
                f"{len(body) - buffer.tell()} bytes left after the {plan.version.label} record",
                schema_id=schema_id,
            )
        return record

    @property
    def _reader_label(self) -> str:
        return self._reader.label if self._reader is not None else "the writer schema"

    def _plan(self, schema_id: int) -> _WriterPlan:
        plan = self._plans.get(schema_id)
        if plan is not None:
            return plan
        from kafkalake.registry import SchemaNotFoundError, compatibility_problems

        try:
            version = self._registry.by_id(schema_id)
        except SchemaNotFoundError:
            raise DecodeError(
                DecodeReason.UNKNOWN_SCHEMA_ID,
                f"schema id {schema_id} is not registered in {self._registry.path}",
                schema_id=schema_id,
            ) from None
        mismatch: str | None = None
        reader = self._reader
        if reader is not None and reader.schema_id != version.schema_id:
            if reader.subject != version.subject:
                mismatch = (
                    f"schema id {schema_id} is {version.label}, not a version of {reader.subject}: "
                    "the message belongs to another subject's topic"
                )
            else:
                problems = compatibility_problems(
                    reader.avro_schema,
                    version.avro_schema,
                    reader_label=f"v{reader.version}",
                    writer_label=f"v{version.version}",
                )
                if problems:
                    mismatch = f"{version.label} cannot be read as {reader.label}: {problems[0].message}"
        plan = _WriterPlan(version=version, scanner=_BodyScanner(version.parsed), mismatch=mismatch)
        self._plans[schema_id] = plan
        return plan


# --------------------------------------------------------------------------- body scan


class _Malformed(Exception):
    """Raised inside the scan; turned into DecodeError with the schema id attached."""

    def __init__(self, reason: DecodeReason, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class _Cursor:
    __slots__ = ("body", "pos", "depth", "zero_width_left")

    def __init__(self, body: bytes) -> None:
        self.body = body
        self.pos = 0
        self.depth = 0
        self.zero_width_left = MAX_ZERO_WIDTH_ITEMS

    def need(self, n: int, what: str) -> None:
        if n > len(self.body) - self.pos:
            raise _Malformed(
                DecodeReason.TRUNCATED,
                f"{what} needs {n} bytes at offset {self.pos} but the body has {len(self.body) - self.pos} left",
            )

    def varint(self, *, bits: int, what: str) -> int:
        """A zig-zag varint that must fit ``bits`` (32 for int, 64 for long), like Java's decoder."""
        body = self.body
        value = 0
        shift = 0
        start = self.pos
        max_bytes = 5 if bits == 32 else 10
        while True:
            if self.pos >= len(body):
                raise _Malformed(DecodeReason.TRUNCATED, f"{what} at offset {start}: body ends inside a varint")
            byte = body[self.pos]
            self.pos += 1
            value |= (byte & 0x7F) << shift
            if not byte & 0x80:
                break
            shift += 7
            if self.pos - start >= max_bytes:
                raise _Malformed(
                    DecodeReason.CORRUPT, f"{what} at offset {start}: varint longer than {max_bytes} bytes"
                )
        if value >> bits:
            raise _Malformed(DecodeReason.CORRUPT, f"{what} at offset {start}: varint overflows {bits} bits")
        return (value >> 1) ^ -(value & 1)


_Scan = Callable[[_Cursor], None]


class _BodyScanner:
    """Walks Avro binary against a writer schema, checking structure without building values."""

    def __init__(self, parsed_schema: Any) -> None:
        # Named types by full name. fastavro's parsed form defines each name before any
        # reference to it (depth-first), so a name is compiled by the time it is used.
        self._compiled: dict[str, _Scan] = {}
        self._min_sizes: dict[str, int] = {}
        self._scan, _ = self._compile(parsed_schema)

    def scan(self, body: bytes, *, schema_id: int) -> None:
        cursor = _Cursor(body)
        try:
            self._scan(cursor)
        except _Malformed as exc:
            raise DecodeError(exc.reason, f"schema id {schema_id}: {exc}", schema_id=schema_id) from None
        except RecursionError:
            raise DecodeError(DecodeReason.CORRUPT, f"schema id {schema_id}: record nested too deeply", schema_id=schema_id) from None
        if cursor.pos != len(body):
            raise DecodeError(
                DecodeReason.TRAILING_BYTES,
                f"schema id {schema_id}: {len(body) - cursor.pos} bytes left after a complete record "
                f"({cursor.pos} of {len(body)} bytes read)",
                schema_id=schema_id,
            )

    def _compile(self, node: Any) -> tuple[_Scan, int]:
        """A scan function and the minimum encoded size of a value of this type."""
        if isinstance(node, str):
            if node in self._compiled:
                # a recursive reference still being compiled counts as size 0: a lower bound
                return self._compiled[node], self._min_sizes.get(node, 0)
            return _primitive(node)
        if isinstance(node, list):
            return self._compile_union(node)
        kind = node.get("type")
        if kind in ("record", "error", "enum", "fixed"):
            return self._compile_named(node)
        if kind == "array":
            return self._compile_blocks(node["items"], keyed=False)
        if kind == "map":
            return self._compile_blocks(node["values"], keyed=True)
        if isinstance(kind, (dict, list)) or (isinstance(kind, str) and kind in self._compiled):
            return self._compile(kind)
        return _primitive(kind)

    def _compile_named(self, node: dict[str, Any]) -> tuple[_Scan, int]:
        name = node["name"]
        if name in self._compiled:
            return self._compiled[name], self._min_sizes.get(name, 0)
        kind = node["type"]
        if kind == "enum":
            count = len(node["symbols"])

            def scan_enum(c: _Cursor) -> None:
                index = c.varint(bits=32, what="enum index")
                if not 0 <= index < count:
                    raise _Malformed(DecodeReason.CORRUPT, f"enum index {index} outside 0..{count - 1}")

            self._compiled[name], self._min_sizes[name] = scan_enum, 1
            return scan_enum, 1
        if kind == "fixed":
            size = int(node["size"])

            def scan_fixed(c: _Cursor) -> None:
                c.need(size, f"fixed {name}")
                c.pos += size

            self._compiled[name], self._min_sizes[name] = scan_fixed, size
            return scan_fixed, size

        # record: bind the name first so recursive references find it
        field_scans: list[_Scan] = []

        def scan_record(c: _Cursor) -> None:
            c.depth += 1
            if c.depth > MAX_DEPTH:
                raise _Malformed(DecodeReason.CORRUPT, f"records nested deeper than {MAX_DEPTH} levels")
            for scan_field in field_scans:
                scan_field(c)
            c.depth -= 1

        self._compiled[name] = scan_record
        total = 0
        for record_field in node["fields"]:
            scan_field, size = self._compile(record_field["type"])
            field_scans.append(scan_field)
            total += size
        self._min_sizes[name] = total
        return scan_record, total

    def _compile_union(self, branches: list[Any]) -> tuple[_Scan, int]:
        compiled = [self._compile(b)[0] for b in branches]
        count = len(compiled)

        def scan_union(c: _Cursor) -> None:
            index = c.varint(bits=64, what="union branch index")
            if not 0 <= index < count:
                raise _Malformed(DecodeReason.CORRUPT, f"union branch index {index} outside 0..{count - 1}")
            compiled[index](c)

        return scan_union, 1

    def _compile_blocks(self, item_schema: Any, *, keyed: bool) -> tuple[_Scan, int]:
        scan_item, item_size = self._compile(item_schema)
        scan_key = _primitive("string")[0] if keyed else None
        min_item = item_size + (1 if keyed else 0)
        what = "map" if keyed else "array"

        def scan_blocks(c: _Cursor) -> None:
            c.depth += 1
            if c.depth > MAX_DEPTH:
                raise _Malformed(DecodeReason.CORRUPT, f"{what}s nested deeper than {MAX_DEPTH} levels")
            while True:
                count = c.varint(bits=64, what=f"{what} block count")
                if count == 0:
                    break
                block_end = None
                if count < 0:
                    count = -count
                    size = c.varint(bits=64, what=f"{what} block size")
                    if size < 0:
                        raise _Malformed(DecodeReason.CORRUPT, f"{what} block size {size} is negative")
                    c.need(size, f"{what} block of {size} bytes")
                    block_end = c.pos + size
                if min_item > 0:
                    c.need(count * min_item, f"{what} block of {count} items")
                else:
                    c.zero_width_left -= count
                    if c.zero_width_left < 0:
                        raise _Malformed(
                            DecodeReason.CORRUPT,
                            f"{what} declares {count} items that occupy no bytes (limit {MAX_ZERO_WIDTH_ITEMS} per message)",
                        )
                for _ in range(count):
                    if scan_key is not None:
                        scan_key(c)
                    scan_item(c)
                if block_end is not None and c.pos != block_end:
                    raise _Malformed(
                        DecodeReason.CORRUPT, f"{what} block declared {size} bytes but its items took {c.pos - (block_end - size)}"
                    )
            c.depth -= 1

        return scan_blocks, 1


def _primitive(kind: Any) -> tuple[_Scan, int]:
    if kind == "null":

        def scan_null(c: _Cursor) -> None:
            return None

        return scan_null, 0
    if kind == "boolean":

        def scan_boolean(c: _Cursor) -> None:
            c.need(1, "boolean")
            if c.body[c.pos] > 1:
                raise _Malformed(DecodeReason.CORRUPT, f"boolean byte 0x{c.body[c.pos]:02x} at offset {c.pos} is not 0 or 1")
            c.pos += 1

        return scan_boolean, 1
    if kind in ("int", "long"):
        bits = 32 if kind == "int" else 64

        def scan_integer(c: _Cursor) -> None:
            c.varint(bits=bits, what=kind)

        return scan_integer, 1
    if kind in ("float", "double"):
        width = 4 if kind == "float" else 8

        def scan_floating(c: _Cursor) -> None:
            c.need(width, kind)
            c.pos += width

        return scan_floating, width
    if kind in ("bytes", "string"):
        check_text = kind == "string"

        def scan_sized(c: _Cursor) -> None:
            start = c.pos
            length = c.varint(bits=64, what=f"{kind} length")
            if length < 0:
                raise _Malformed(DecodeReason.CORRUPT, f"{kind} at offset {start} has negative length {length}")
            c.need(length, f"{kind} at offset {start}")
            if check_text:
                try:
                    c.body[c.pos : c.pos + length].decode("utf-8")
                except UnicodeDecodeError as exc:
                    raise _Malformed(DecodeReason.CORRUPT, f"string at offset {start} is not UTF-8 ({exc.reason})") from None
            c.pos += length

        return scan_sized, 1
    raise ValueError(f"unknown Avro type {kind!r}")
