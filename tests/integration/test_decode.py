"""kafkalake.stream.decode on a static DataFrame of crafted Kafka rows (real Spark, no Kafka):
every garbage kind gets its reason, good rows of both versions decode, nothing is dropped."""

from __future__ import annotations

import struct
from datetime import UTC, datetime

import pytest

from kafkalake.config import get_settings
from kafkalake.produce.fleet import GARBAGE_KINDS, fleet_from_registry
from kafkalake.schema.registry import Registry
from kafkalake.stream.decode import decode, decode_plan

pytestmark = pytest.mark.integration


def _crafted_rows(spark, values: list[bytes | None]):
    """Kafka source rows with these values, offsets 0, 1, ... (one topic, partition and timestamp)."""
    stamp = datetime(2026, 11, 29, 12, tzinfo=UTC)
    return spark.createDataFrame(
        [(b"k", None if v is None else bytearray(v), "t", 0, i, stamp) for i, v in enumerate(values)],
        "key binary, value binary, topic string, partition int, offset long, timestamp timestamp")


def test_every_garbage_kind_and_an_id_beyond_int_range_are_quarantined_with_their_reason(lake_spark) -> None:
    registry = Registry(get_settings().schemas_dir)
    fleet = fleet_from_registry(registry, devices=10, v1_fraction=0.5, seed=4)
    good = [m[1] for m in fleet.messages(200)]
    body = fleet.garbage("TRAILING_BYTES")[5:-6]  # a valid v2 body
    values = [(v, None) for v in good] + [(fleet.garbage(kind), kind) for kind in GARBAGE_KINDS]
    # ids a Confluent header can carry but no registry has: 2^31 and 2^32 - 1 overflow an int
    values += [(b"\x00" + struct.pack(">I", big) + body, "UNKNOWN_SCHEMA_ID") for big in (2**31, 2**32 - 1, 7_000_000)]
    values += [(None, "EMPTY")]
    raw = _crafted_rows(lake_spark, [v for v, _r in values])
    out = {r["offset"]: r for r in decode(raw, decode_plan(registry, "fridge")).collect()}

    assert len(out) == len(values)  # nothing dropped
    assert [out[i]["reason"] for i in range(len(values))] == [reason for _v, reason in values]
    landed = [out[i] for i in range(len(good))]
    assert all(r["reason"] is None and r["value"] is None and r["name"] and r["schema_version"] in (1, 2)
               for r in landed)
    assert all(bytes(r["key"]) == b"k" for r in out.values())  # the Kafka key on every row
    assert {r["schema_version"] for r in landed} == {1, 2}
    assert all((r["temperature"] is None) == (r["schema_version"] == 1) for r in landed)
    quarantined = [out[i] for i in range(len(good), len(values))]
    assert all(r["reason"] is not None and r["name"] is None for r in quarantined)
    assert [bytes(r["value"]) if r["value"] is not None else None for r in quarantined] == \
        [v for v, _r in values[len(good):]]
    assert out[len(values) - 2]["schema_id"] == 7_000_000  # an unknown id that fits is kept for the operator


def test_a_schema_with_an_array_gets_every_body_reason(lake_spark, tmp_path) -> None:
    """Arrays have no fixed shape in bytes: the checks must still find each bad body."""
    import json

    from kafkalake.wire.encoder import FramedEncoder

    schema = {"type": "record", "name": "Reading", "fields": [
        {"name": "sensor", "type": "string"}, {"name": "values", "type": {"type": "array", "items": "double"}}]}
    registry = Registry(tmp_path / "schemas")
    registry.register("readings", json.dumps(schema))
    version = registry.latest("readings")
    encoder = FramedEncoder.for_version(version)
    good = [encoder.encode({"sensor": f"s{i}", "values": [float(v) for v in range(i % 4)]}) for i in range(20)]
    values = [(v, None) for v in good] + [
        (good[3] + b"\x00", "TRAILING_BYTES"),
        (good[3][:5] + b"\xff\xff\xff\xff\x0f" + good[3][6:], "CORRUPT"),  # sensor's length: a huge negative
        (good[3][:7], "TRUNCATED"),
    ]
    rows = decode(_crafted_rows(lake_spark, [v for v, _r in values]), decode_plan(registry, "readings")).collect()
    out = {r["offset"]: r for r in rows}
    assert [out[i]["reason"] for i in range(len(values))] == [reason for _v, reason in values]
    assert [len(out[i]["values"]) for i in range(len(good))] == [i % 4 for i in range(20)]


def test_a_record_of_only_nullable_fields_tells_a_failed_decode_from_a_real_one(lake_spark, tmp_path) -> None:
    """PERMISSIVE mode gives a failed decode as a record of nulls, which a record whose fields
    are all nullable can really be: the decode's own success field must tell them apart."""
    import json

    from kafkalake.wire.encoder import FramedEncoder

    schema = {"type": "record", "name": "Maybe", "fields": [{"name": "a", "type": ["null", "string"], "default": None}]}
    registry = Registry(tmp_path / "schemas")
    registry.register("maybe", json.dumps(schema))
    encoder = FramedEncoder.for_version(registry.latest("maybe"))
    null_record, text_record = encoder.encode({"a": None}), encoder.encode({"a": "hi"})
    values = [
        (null_record, None),  # a real record of nulls: one byte, union branch 0
        (text_record, None),
        (null_record[:5] + b"\x08", "CORRUPT"),  # union branch 4 of 2
        (null_record[:5] + b"\x02\x08h", "TRUNCATED"),  # "hi" cut after its first byte
        (null_record + b"\x00", "TRAILING_BYTES"),
    ]
    rows = decode(_crafted_rows(lake_spark, [v for v, _r in values]), decode_plan(registry, "maybe")).collect()
    out = {r["offset"]: r for r in rows}
    assert [out[i]["reason"] for i in range(len(values))] == [reason for _v, reason in values]
    assert [out[i]["a"] for i in range(2)] == [None, "hi"] and out[0]["reason"] is None


def test_trailing_bytes_of_every_length_are_found_also_when_they_mimic_the_end_marker(lake_spark) -> None:
    """The decode appends the plan's end marker and expects it back: trailing bytes that are a
    prefix of the marker must not pass for it (the marker never repeats itself at a shift)."""
    from kafkalake.stream.decode import END_MARKER_SIZE, new_end_marker

    registry = Registry(get_settings().schemas_dir)
    plan = decode_plan(registry, "fridge")
    marker = plan.end_marker
    assert len(marker) == END_MARKER_SIZE and new_end_marker() != marker
    assert all(marker[k:] != marker[:END_MARKER_SIZE - k] for k in range(1, END_MARKER_SIZE))
    good = [m[1] for m in fleet_from_registry(registry, devices=4, v1_fraction=0.5, seed=9).messages(4)]
    trailing = [marker[:k] for k in range(1, END_MARKER_SIZE)]
    trailing += [bytes([b]) * n for b in (0, 1, 255) for n in (1, 2, 17, 40)]
    values = good + [g + t for g in good[:2] for t in trailing]
    out = {r["offset"]: r for r in decode(_crafted_rows(lake_spark, values), plan).collect()}
    assert [out[i]["reason"] for i in range(len(good))] == [None] * len(good)
    assert {out[i]["reason"] for i in range(len(good), len(values))} == {"TRAILING_BYTES"}
    assert len(out) == len(values)


EVOLUTIONS = {
    # v2 adds a required field with a default: v1 rows get it from the reader
    "added_required_field": (
        [{"name": "name", "type": "string"}, {"name": "n", "type": "int"}],
        [{"name": "name", "type": "string"}, {"name": "n", "type": "int"},
         {"name": "count", "type": "int", "default": 7}],
    ),
    # v2 promotes int -> long: v1's bytes are shorter than v2's for the same values
    "promoted_int_to_long": (
        [{"name": "name", "type": "string"}, {"name": "n", "type": "int"}],
        [{"name": "name", "type": "string"}, {"name": "n", "type": "long"},
         {"name": "note", "type": ["null", "string"], "default": None}],
    ),
}


@pytest.mark.parametrize("evolution", sorted(EVOLUTIONS))
def test_each_evolution_gives_every_writer_version_its_rows_and_reasons(lake_spark, tmp_path, evolution) -> None:
    """The end-marker decode resolves every writer into the reader's shape: it must land good
    rows of each version (v1 rows with the reader's defaults, promoted values widened) and find
    TRAILING_BYTES, TRUNCATED and CORRUPT bodies of each version."""
    import json

    from kafkalake.wire.encoder import FramedEncoder

    v1_fields, v2_fields = EVOLUTIONS[evolution]
    registry = Registry(tmp_path / "schemas")
    for fields in (v1_fields, v2_fields):
        registry.register("things", json.dumps({"type": "record", "name": "Thing", "fields": fields}))
    v1, v2 = (registry.get("things", n) for n in (1, 2))
    plan = decode_plan(registry, "things")

    values: list[tuple[bytes, str | None, int]] = []
    for version, extra in ((v1, {}), (v2, {"count": 3} if evolution == "added_required_field" else {"note": "hi"})):
        encoder = FramedEncoder.for_version(version)
        good = [encoder.encode({"name": f"{version.version}-{i}", "n": i * 1000 - 3, **extra}) for i in range(6)]
        values += [(g, None, version.version) for g in good]
        values += [
            (good[2] + b"\x00", "TRAILING_BYTES", version.version),
            (good[2][:-1], "TRUNCATED", version.version),  # its last byte cut off
            (good[2][:5] + b"\x03" + good[2][6:], "CORRUPT", version.version),  # name's length: -2
        ]
    out = {r["offset"]: r for r in decode(_crafted_rows(lake_spark, [v for v, _r, _n in values]), plan).collect()}

    assert [out[i]["reason"] for i in range(len(values))] == [reason for _v, reason, _n in values]
    landed = [(out[i], number) for i, (_v, reason, number) in enumerate(values) if reason is None]
    assert len(landed) == 12 and all(r["reason"] is None and r["schema_version"] == n for r, n in landed)
    assert sorted(r["n"] for r, n in landed if n == 1) == [i * 1000 - 3 for i in range(6)]
    if evolution == "added_required_field":
        assert {r["count"] for r, n in landed} == {7, 3} and all(r["count"] == (7 if n == 1 else 3) for r, n in landed)
    else:
        assert all(r["note"] == (None if n == 1 else "hi") for r, n in landed)
