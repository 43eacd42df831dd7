"""kafkalake.avro_size against real encodings: fastavro writes, Spark's from_avro decodes,
the column arithmetic must give each record's exact byte length (the TRAILING_BYTES check)."""

from __future__ import annotations

import io
import json
import random
from datetime import date, datetime, timedelta, timezone

import pytest

from kafkalake.avro_size import encoded_size, sized

pytestmark = pytest.mark.integration

SCHEMA = {
    "type": "record", "name": "Everything", "namespace": "t",
    "fields": [
        {"name": "s", "type": "string"},
        {"name": "b", "type": "bytes"},
        {"name": "i", "type": "int"},
        {"name": "l", "type": "long"},
        {"name": "f", "type": "float"},
        {"name": "d", "type": "double"},
        {"name": "flag", "type": "boolean"},
        {"name": "ns", "type": ["null", "string"]},
        {"name": "ni", "type": ["int", "null"]},
        {"name": "color", "type": {"type": "enum", "name": "Color", "symbols": ["RED", "GREEN", "BLUE"]}},
        {"name": "mac", "type": {"type": "fixed", "name": "Mac", "size": 6}},
        {"name": "inner", "type": {"type": "record", "name": "Inner", "fields": [
            {"name": "n", "type": "long"}, {"name": "tag", "type": ["null", "Color"]}]}},
        {"name": "again", "type": ["null", "Inner"]},
        {"name": "day", "type": {"type": "int", "logicalType": "date"}},
        {"name": "ms", "type": {"type": "long", "logicalType": "timestamp-millis"}},
        {"name": "us", "type": ["null", {"type": "long", "logicalType": "timestamp-micros"}]},
    ],
}
EDGES = [0, 1, -1, 63, -64, 64, -65, 8191, 8192, 2**31 - 1, -(2**31)]
LONG_EDGES = EDGES + [2**35, -(2**35), 2**62, 2**63 - 1, -(2**63)]


def _record(rng: random.Random, n: int) -> dict:
    epoch = datetime(1970, 1, 1, tzinfo=timezone.utc)
    return {
        "s": "".join(rng.choice("aé€😀") for _ in range(rng.choice([0, 1, 5, 63, 64, 200]))),
        "b": bytes(rng.randrange(256) for _ in range(rng.choice([0, 7, 64, 130]))),
        "i": EDGES[n % len(EDGES)] if n % 2 else rng.randint(-(2**31), 2**31 - 1),
        "l": LONG_EDGES[n % len(LONG_EDGES)] if n % 2 else rng.randint(-(2**63), 2**63 - 1),
        "f": rng.random(), "d": rng.random() * 1e9, "flag": bool(n % 2),
        "ns": None if n % 3 == 0 else "x" * (n % 130),
        "ni": None if n % 4 == 0 else EDGES[n % len(EDGES)],
        "color": ["RED", "GREEN", "BLUE"][n % 3],
        "mac": bytes(6),
        "inner": {"n": LONG_EDGES[(n + 3) % len(LONG_EDGES)], "tag": None if n % 2 else "BLUE"},
        "again": None if n % 5 == 0 else {"n": n, "tag": "RED"},
        "day": date(1970, 1, 1) + timedelta(days=rng.randint(-700_000, 2_900_000)),
        "ms": epoch + timedelta(milliseconds=rng.randint(-(2**40), 2**42)),
        "us": None if n % 6 == 0 else epoch + timedelta(microseconds=rng.randint(0, 2**52)),
    }


def test_encoded_size_equals_the_real_encoding_and_sees_trailing_bytes(lake_spark) -> None:  # noqa: ANN001
    import fastavro
    from pyspark.sql import functions as F
    from pyspark.sql.avro.functions import from_avro

    parsed = fastavro.parse_schema(SCHEMA)
    rng = random.Random(7)
    bodies = []
    for n in range(400):
        out = io.BytesIO()
        fastavro.schemaless_writer(out, parsed, _record(rng, n))
        bodies.append(out.getvalue())
    # the same record as record 0 with its first string's length as an over-long varint
    # (0x80 0x00 = 0 in two bytes) + a trailing byte: both decode, neither is canonical
    empty_s = next(b for b in bodies if b[0] == 0)
    odd = [b"\x80\x00" + empty_s[1:], empty_s + b"\x00"]
    df = lake_spark.createDataFrame([(bytearray(b),) for b in bodies + odd], "body binary")
    schema_json = json.dumps(SCHEMA)
    decoded = df.select("body", from_avro("body", schema_json, {"mode": "FAILFAST"}).alias("rec"))
    size = encoded_size(F.col("rec"), schema_json)
    two_step = sized(F.col("rec"), schema_json, "_m")  # what the ingest uses: magnitudes first
    assert size is not None and two_step is not None
    magnitudes, staged_size = two_step
    rows = (decoded.select("*", size.alias("computed"), *magnitudes)
            .select(F.length("body").alias("actual"), "computed", staged_size.alias("staged")).collect())
    assert [r["computed"] for r in rows[:-2]] == [r["actual"] for r in rows[:-2]]
    assert [r["staged"] for r in rows] == [r["computed"] for r in rows]
    assert [r["actual"] - r["computed"] for r in rows[-2:]] == [1, 1]


def test_types_the_arithmetic_does_not_cover_fall_back_to_to_avro(lake_spark) -> None:  # noqa: ANN001
    from pyspark.sql import functions as F

    record = {"type": "record", "name": "R", "fields": [{"name": "x", "type": "long"}]}
    for field_type in ({"type": "array", "items": "long"}, {"type": "map", "values": "long"}, ["int", "string"],
                       ["null", "int", "string"],
                       {"type": "bytes", "logicalType": "decimal", "precision": 5, "scale": 2}):
        doc = {**record, "fields": [*record["fields"], {"name": "y", "type": field_type}]}
        assert encoded_size(F.col("r"), json.dumps(doc)) is None, field_type
    assert encoded_size(F.col("r"), json.dumps(record)) is not None
