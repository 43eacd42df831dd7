"""Encode records into Confluent-framed Avro messages (Python side)."""

from __future__ import annotations

import io
import struct
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from kafkalake.wire.framing import HEADER, MAGIC, EncodeError, frame

if TYPE_CHECKING:
    from kafkalake.schema.model import SchemaVersion


def encode_body(
    schema: SchemaVersion | Mapping[str, Any], record: Mapping[str, Any], *, validate: bool = True
) -> bytes:
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


class FramedEncoder:
    """Encode records of one writer schema into Confluent-framed payloads, fast.

    ``fastavro._write.write_data`` is the compiled routine behind ``schemaless_writer``; it
    appends to a ``bytearray``, so the header is written once per record with no copy.
    Falls back to ``schemaless_writer`` when the compiled module is not there.
    """

    def __init__(self, *, schema_id: int, parsed_schema: Mapping[str, Any]) -> None:
        self.schema_id = schema_id
        self.parsed_schema = parsed_schema
        self.header = HEADER.pack(MAGIC, schema_id)
        try:
            from fastavro._write import write_data  # compiled (Cython) writer

            self._write_data: Callable[..., None] | None = write_data
        except ImportError:  # pragma: no cover - pure-Python fastavro build
            self._write_data = None
        self._named: dict[str, Any] = {}
        self._options: dict[str, Any] = {}

    @classmethod
    def for_version(cls, version: SchemaVersion) -> FramedEncoder:
        return cls(schema_id=version.schema_id, parsed_schema=version.parsed)

    def encode(self, record: Mapping[str, Any]) -> bytes:
        buf = bytearray(self.header)
        if self._write_data is not None:
            self._write_data(buf, record, self.parsed_schema, self._named, "", self._options)
        else:  # pragma: no cover
            import io

            from fastavro import schemaless_writer

            out = io.BytesIO()
            schemaless_writer(out, self.parsed_schema, record)
            buf += out.getvalue()
        return bytes(buf)  # librdkafka takes read-only buffers
