"""Confluent wire format: framing, schema resolution, and a decoder that fails only one way."""

from __future__ import annotations

import io
import json
import shutil
import time
from pathlib import Path
from typing import Any

import avro.io
import avro.schema
import fastavro
import pytest
from fastavro.utils import generate_many
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kafkalake.schema.model import Compatibility, SchemaVersion
from kafkalake.schema.registry import Registry
from kafkalake.wire.decoder import Decoder
from kafkalake.wire.encoder import encode, encode_body
from kafkalake.wire.framing import HEADER_SIZE, MAGIC, DecodeError, DecodeReason, EncodeError, frame, parse_header
from kafkalake.wire.scanner import MAX_ZERO_WIDTH_ITEMS

REPO = Path(__file__).resolve().parents[3]

FUZZ_SCHEMA = {
    "type": "record",
    "name": "Fuzz",
    "namespace": "t",
    "doc": "Every Avro type, so random bytes exercise every branch of the body scan.",
    "fields": [
        {"name": "b", "type": "boolean"},
        {"name": "i", "type": "int"},
        {"name": "l", "type": "long"},
        {"name": "f", "type": "float"},
        {"name": "d", "type": "double"},
        {"name": "s", "type": "string"},
        {"name": "by", "type": "bytes"},
        {"name": "fx", "type": {"type": "fixed", "name": "Four", "size": 4}},
        {"name": "e", "type": {"type": "enum", "name": "Color", "symbols": ["RED", "GREEN", "BLUE"]}},
        {"name": "arr", "type": {"type": "array", "items": "long"}},
        {"name": "nulls", "type": {"type": "array", "items": "null"}},
        {"name": "m", "type": {"type": "map", "values": ["null", "string"]}},
        {"name": "u", "type": ["null", "int", "string", "Four"]},
        {"name": "next", "type": ["null", "Fuzz"]},
    ],
}
BLOCKS_SCHEMA = {
    "type": "record",
    "name": "Blocks",
    "namespace": "t",
    "fields": [
        {"name": "nulls", "type": {"type": "array", "items": "null"}},
        {"name": "words", "type": {"type": "array", "items": "string"}},
    ],
}


def zigzag(n: int) -> bytes:
    """Avro's varint encoding of a long, for hand-made payloads."""
    value = (n << 1) ^ (n >> 63)
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _build_registry(root: Path) -> Registry:
    """The shipped fridge subject (ids 1, 2) plus subjects made for these tests."""
    shutil.copytree(REPO / "schemas", root)
    registry = Registry(root)
    registry.register("fuzz", json.dumps(FUZZ_SCHEMA))  # id 3
    registry.register("blocks", json.dumps(BLOCKS_SCHEMA))  # id 4
    registry.register("oven", json.dumps({"type": "record", "name": "Oven",
                                          "fields": [{"name": "t", "type": "double"}]}))  # id 5
    registry.set_compatibility("meter", Compatibility.NONE)
    registry.register("meter", json.dumps({"type": "record", "name": "M",
                                           "fields": [{"name": "a", "type": "int"}]}))  # id 6
    registry.register("meter", json.dumps({"type": "record", "name": "M",
                                           "fields": [{"name": "a", "type": "string"}]}))  # id 7
    return registry


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Registry:
    return _build_registry(tmp_path_factory.mktemp("wire") / "schemas")


@pytest.fixture(scope="module")
def fridge(registry: Registry) -> tuple[SchemaVersion, SchemaVersion]:
    return registry.get("fridge", 1), registry.get("fridge", 2)


@pytest.fixture(scope="module")
def decoders(registry: Registry) -> list[Decoder]:
    """One decoder per way tools read: as written, as fridge latest, as fuzz latest."""
    return [Decoder(registry), Decoder(registry, "fridge"), Decoder(registry, "fuzz")]


@pytest.fixture(scope="module")
def valid_payloads(registry: Registry, fridge: tuple[SchemaVersion, SchemaVersion]) -> list[bytes]:
    fuzz = registry.latest("fuzz")
    payloads = [encode(fuzz, r) for r in generate_many(fuzz.parsed, 60)]
    payloads += [encode(fridge[0], r) for r in generate_many(fridge[0].parsed, 20)]
    payloads += [encode(fridge[1], r) for r in generate_many(fridge[1].parsed, 20)]
    return payloads


def outcome(decoder: Decoder, payload: Any) -> DecodeReason | None:
    """The property every input must satisfy: a dict, or a DecodeError -- nothing else."""
    try:
        result = decoder.decode(payload)
    except DecodeError as exc:
        assert isinstance(exc.reason, DecodeReason)
        assert str(exc) and "\n" not in str(exc)
        # the body scan must catch every structural problem before fastavro runs
        assert "does not decode as" not in str(exc), str(exc)
        return exc.reason
    assert isinstance(result, dict)
    return None


# --------------------------------------------------------------------------- framing


def test_header_is_confluent_magic_byte_and_big_endian_id() -> None:
    assert (MAGIC, HEADER_SIZE) == (0, 5)
    assert frame(258, b"\x02a") == b"\x00\x00\x00\x01\x02\x02a"
    assert parse_header(frame(2**31 - 1, b"")) == 2**31 - 1
    for bad_id in (-1, 2**31, True, 1.0):
        with pytest.raises(ValueError):
            frame(bad_id, b"")  # type: ignore[arg-type]


def test_encode_frames_fastavro_schemaless_bytes(fridge: tuple[SchemaVersion, SchemaVersion]) -> None:
    v1, _ = fridge
    record = {"name": "yuki", "action": "login2", "sendtime": 3}
    payload = encode(v1, record)
    body = io.BytesIO()
    fastavro.schemaless_writer(body, v1.parsed, record)
    assert payload == b"\x00\x00\x00\x00\x01" + body.getvalue()
    assert encode(v1.parsed, record, schema_id=1) == payload
    assert encode_body(v1, record) == body.getvalue()
    with pytest.raises(ValueError, match="schema_id"):
        encode(v1.parsed, record)


def test_encode_refuses_records_that_do_not_match(fridge: tuple[SchemaVersion, SchemaVersion]) -> None:
    v1, _ = fridge
    with pytest.raises(EncodeError, match="fridge v1"):
        encode(v1, {"name": "yuki", "action": None, "sendtime": 1.5})  # fastavro alone writes 1
    with pytest.raises(EncodeError):
        encode(v1, {"action": None, "sendtime": 1})


def test_other_avro_implementations_interoperate(
    registry: Registry, fridge: tuple[SchemaVersion, SchemaVersion]
) -> None:
    """The notebook's producer used the avro package; its bytes, framed, decode here and back."""
    v1, v2 = fridge
    writer = avro.io.DatumWriter(avro.schema.parse(v1.schema_json))
    buffer = io.BytesIO()
    writer.write({"name": "yuki_schema_ver1", "action": "login2", "sendtime": 7}, avro.io.BinaryEncoder(buffer))
    decoded = Decoder(registry, "fridge").decode(frame(v1.schema_id, buffer.getvalue()))
    assert decoded == {"name": "yuki_schema_ver1", "action": "login2", "sendtime": 7, "temperature": None}
    ours = encode(v2, {"name": "n", "action": None, "sendtime": None, "temperature": -1.5})
    reader = avro.io.DatumReader(avro.schema.parse(v2.schema_json))
    assert reader.read(avro.io.BinaryDecoder(io.BytesIO(ours[HEADER_SIZE:])))["temperature"] == -1.5


# --------------------------------------------------------------------------- resolution


def test_v1_payload_read_with_v2_reader_gets_null_temperature(
    registry: Registry, fridge: tuple[SchemaVersion, SchemaVersion]
) -> None:
    v1, _ = fridge
    payload = encode(v1, {"name": "yuki", "action": "login2", "sendtime": 3})
    message = Decoder(registry, "fridge").decode_message(payload)
    assert message.record == {"name": "yuki", "action": "login2", "sendtime": 3, "temperature": None}
    assert (message.schema_id, message.writer.version) == (1, 1)
    assert Decoder(registry).decode(payload) == {"name": "yuki", "action": "login2", "sendtime": 3}


def test_v2_roundtrips_and_v1_reader_drops_temperature(
    registry: Registry, fridge: tuple[SchemaVersion, SchemaVersion]
) -> None:
    _, v2 = fridge
    record = {"name": "fridge-7", "action": None, "sendtime": 1_700_000_000 % 2**31, "temperature": 3.25}
    payload = encode(v2, record)
    assert Decoder(registry, "fridge").decode(payload) == record
    assert Decoder(registry, "fridge", reader_version=1).decode(payload) == {
        "name": "fridge-7",
        "action": None,
        "sendtime": record["sendtime"],
    }


fridge_v1_records = st.fixed_dictionaries(
    {
        "name": st.text(max_size=20),
        "action": st.none() | st.text(max_size=10),
        "sendtime": st.none() | st.integers(-(2**31), 2**31 - 1),
    }
)


@settings(max_examples=400, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(record=fridge_v1_records, temperature=st.none() | st.floats(allow_nan=False))
def test_every_fridge_record_roundtrips(
    registry: Registry, fridge: tuple[SchemaVersion, SchemaVersion], record: dict[str, Any], temperature: float | None
) -> None:
    v1, v2 = fridge
    decoder = Decoder(registry, "fridge")
    assert decoder.decode(encode(v1, record)) == {**record, "temperature": None}
    assert decoder.decode(encode(v2, {**record, "temperature": temperature})) == {**record, "temperature": temperature}


def test_generated_payloads_of_every_type_decode_like_fastavro(registry: Registry, valid_payloads: list[bytes]) -> None:
    decoder = Decoder(registry)
    for payload in valid_payloads:
        writer = registry.by_id(parse_header(payload))
        expected = fastavro.schemaless_reader(io.BytesIO(payload[HEADER_SIZE:]), writer.parsed, None)
        assert decoder.decode(payload) == expected


def test_decoder_finds_ids_registered_after_it_was_built(tmp_path: Path) -> None:
    registry = _build_registry(tmp_path / "schemas")
    decoder = Decoder(registry, "fridge")
    v2 = json.loads(registry.latest("fridge").schema_json)
    v2["fields"].append({"name": "door_open", "type": ["null", "boolean"], "default": None})
    v3 = Registry(registry.path).register("fridge", json.dumps(v2))  # another process, same folder
    payload = encode(v3, {"name": "n", "action": None, "sendtime": None, "temperature": None, "door_open": True})
    assert decoder.decode(payload) == {"name": "n", "action": None, "sendtime": None, "temperature": None}


# --------------------------------------------------------------------------- every reason code


def _reason_cases(v1: SchemaVersion) -> list[tuple[str, Any, DecodeReason]]:
    good = encode(v1, {"name": "yuki", "action": "login2", "sendtime": 3})
    body = good[HEADER_SIZE:]
    return [
        ("empty", b"", DecodeReason.EMPTY),
        ("tombstone", None, DecodeReason.EMPTY),
        ("json-not-avro", b'{"name": "yuki"}', DecodeReason.BAD_MAGIC),
        ("magic-only", b"\x00", DecodeReason.SHORT_HEADER),
        ("four-bytes", b"\x00\x00\x00\x01", DecodeReason.SHORT_HEADER),
        ("unknown-id", frame(999, body), DecodeReason.UNKNOWN_SCHEMA_ID),
        ("header-only", good[:HEADER_SIZE], DecodeReason.TRUNCATED),
        ("last-byte-cut", good[:-1], DecodeReason.TRUNCATED),
        ("string-longer-than-body", frame(1, zigzag(2**62)), DecodeReason.TRUNCATED),
        ("negative-string-length", frame(1, zigzag(-3)), DecodeReason.CORRUPT),
        ("not-utf8", frame(1, zigzag(2) + b"\xff\xfe" + b"\x02\x00"), DecodeReason.CORRUPT),
        ("union-index-out-of-range", frame(1, b"\x02a" + zigzag(5) + b"\x02"), DecodeReason.CORRUPT),
        ("varint-too-long", frame(1, b"\x02a\x02" + b"\xff" * 11), DecodeReason.CORRUPT),
        ("int-overflows-32-bits", frame(1, b"\x02a\x02\x00" + b"\xff\xff\xff\xff\x7f"), DecodeReason.CORRUPT),
        ("trailing-byte", good + b"\x00", DecodeReason.TRAILING_BYTES),
        ("two-records", good + body, DecodeReason.TRAILING_BYTES),
        ("another-subject", frame(5, b"\x00" * 8), DecodeReason.SCHEMA_MISMATCH),
    ]


def test_each_malformed_payload_gets_its_reason(
    registry: Registry, fridge: tuple[SchemaVersion, SchemaVersion]
) -> None:
    decoder = Decoder(registry, "fridge")
    for name, payload, reason in _reason_cases(fridge[0]):
        with pytest.raises(DecodeError) as caught:
            decoder.decode(payload)
        assert caught.value.reason is reason, name
        assert caught.value.message == str(caught.value)


def test_incompatible_versions_of_the_readers_subject_are_a_schema_mismatch(registry: Registry) -> None:
    payload = encode(registry.get("meter", 1), {"a": 5})
    with pytest.raises(DecodeError) as caught:
        Decoder(registry, "meter").decode(payload)
    assert caught.value.reason is DecodeReason.SCHEMA_MISMATCH
    assert "meter v1 cannot be read as meter v2" in str(caught.value)
    assert caught.value.schema_id == 6
    assert Decoder(registry, "meter", reader_version=1).decode(payload) == {"a": 5}


def test_huge_declared_counts_and_lengths_fail_fast(registry: Registry) -> None:
    """fastavro alone spends minutes on an array of nulls declaring 2**31 items."""
    decoder = Decoder(registry)
    blocks = registry.latest("blocks").schema_id
    started = time.monotonic()
    cases = {
        "null-items": (frame(blocks, zigzag(2**31 - 1) + b"\x00\x00"), DecodeReason.CORRUPT),
        "null-items-over-many-blocks": (
            frame(blocks, (zigzag(MAX_ZERO_WIDTH_ITEMS // 2) * 3) + b"\x00\x00"),
            DecodeReason.CORRUPT,
        ),
        "string-items": (frame(blocks, b"\x00" + zigzag(2**40) + b"\x02a"), DecodeReason.TRUNCATED),
        "block-size": (frame(blocks, zigzag(-1) + zigzag(2**40)), DecodeReason.TRUNCATED),
    }
    for name, (payload, reason) in cases.items():
        assert outcome(decoder, payload) is reason, name
    assert time.monotonic() - started < 1.0
    assert decoder.decode(frame(blocks, zigzag(3) + b"\x00" + zigzag(-1) + zigzag(2) + b"\x02a" + b"\x00")) == {
        "nulls": [None, None, None],
        "words": ["a"],
    }


# --------------------------------------------------------------------------- property tests (10,000+ inputs)

FAST = dict(deadline=None, database=None,
            suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


@settings(max_examples=3_000, **FAST)
@given(payload=st.binary(max_size=64))
def test_random_bytes_decode_or_raise_decode_error(decoders: list[Decoder], payload: bytes) -> None:
    for decoder in decoders:
        outcome(decoder, payload)


@settings(max_examples=4_000, **FAST)
@given(schema_id=st.sampled_from([1, 2, 3, 4, 5, 6, 7, 0, 999, 2**32 - 1]), body=st.binary(max_size=300))
def test_random_bodies_behind_a_valid_header_decode_or_raise_decode_error(
    decoders: list[Decoder], schema_id: int, body: bytes
) -> None:
    payload = b"\x00" + schema_id.to_bytes(4, "big") + body
    reasons = {outcome(decoder, payload) for decoder in decoders}
    if schema_id in (0, 999, 2**32 - 1):
        assert reasons == {DecodeReason.UNKNOWN_SCHEMA_ID}


mutation = st.one_of(
    st.tuples(st.just("flip"), st.integers(min_value=0), st.integers(1, 255)),
    st.tuples(st.just("cut"), st.integers(min_value=0), st.just(0)),
    st.tuples(st.just("insert"), st.integers(min_value=0), st.integers(0, 255)),
    st.tuples(st.just("delete"), st.integers(min_value=0), st.just(0)),
    st.tuples(st.just("append"), st.just(0), st.integers(0, 255)),
)


def mutate(payload: bytes, steps: list[tuple[str, int, int]]) -> bytes:
    data = bytearray(payload)
    for op, position, value in steps:
        at = position % (len(data) + 1)
        if op == "flip" and data:
            data[at % len(data)] ^= value
        elif op == "cut":
            del data[at:]
        elif op == "insert":
            data.insert(at, value)
        elif op == "delete" and data:
            del data[at % len(data)]
        elif op == "append":
            data.append(value)
    return bytes(data)


@settings(max_examples=4_000, **FAST)
@given(index=st.integers(min_value=0), steps=st.lists(mutation, min_size=1, max_size=4))
def test_mutated_valid_payloads_decode_or_raise_decode_error(
    decoders: list[Decoder], valid_payloads: list[bytes], index: int, steps: list[tuple[str, int, int]]
) -> None:
    original = valid_payloads[index % len(valid_payloads)]
    payload = mutate(original, steps)
    reasons = [outcome(decoder, payload) for decoder in decoders]
    if payload == original:
        assert reasons[0] is None
    if HEADER_SIZE < len(payload) < len(original) and original.startswith(payload):
        assert reasons[0] is DecodeReason.TRUNCATED
