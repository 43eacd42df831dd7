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

import struct
from enum import Enum

from kafkalake.errors import KafkalakeError

MAGIC = 0
MAGIC_BYTE = b"\x00"
#: magic byte + 4-byte big-endian schema id: the Confluent header, defined here only
HEADER = struct.Struct(">BI")
HEADER_SIZE = HEADER.size
MAX_SCHEMA_ID = 2**31 - 1


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


def frame(schema_id: int, avro_bytes: bytes) -> bytes:
    """Prefix Avro binary with the 5-byte Confluent header naming its writer schema."""
    if isinstance(schema_id, bool) or not isinstance(schema_id, int) or not 0 <= schema_id <= MAX_SCHEMA_ID:
        raise ValueError(f"schema id must be an integer in 0..{MAX_SCHEMA_ID}, got {schema_id!r}")
    return HEADER.pack(MAGIC, schema_id) + bytes(avro_bytes)


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
