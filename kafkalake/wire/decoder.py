"""Decode Confluent-framed Avro messages in Python, resolving each writer schema.

The reference for the JVM decode (:mod:`kafkalake.stream.decode`) and for tools that
read a topic without Spark; reason codes are :class:`DecodeReason` members.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from kafkalake.wire.framing import HEADER_SIZE, DecodeError, DecodeReason, parse_header
from kafkalake.wire.scanner import _BodyScanner

if TYPE_CHECKING:
    from kafkalake.schema.model import SchemaVersion
    from kafkalake.schema.registry import Registry


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
        from kafkalake.schema.compatibility import compatibility_problems
        from kafkalake.schema.model import SchemaNotFoundError

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
