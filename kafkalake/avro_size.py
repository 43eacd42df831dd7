"""The Avro binary size of a decoded record, as a Spark column expression.

The decode path flags TRAILING_BYTES when a record's body is longer than its own encoding:
``from_avro`` stops reading at the end of the record and ignores what follows. Re-encoding
every row with ``to_avro`` to measure that length doubled the Avro work of the ingest (one
decode plus one full serialisation per record). The size of Avro's binary encoding follows
from the values alone, so for the types below it is computed with plain column arithmetic:

* int, long (and date / timestamp-millis / timestamp-micros): the zig-zag varint's length;
* string, bytes: varint(byte length) + byte length; float 4, double 8, boolean 1, null 0;
* fixed: its size; enum with at most 64 symbols: 1 (the index's varint);
* record: the sum of its fields; ``["null", T]`` / ``[T, "null"]``: 1 (the branch index) + T.

Anything else (arrays, maps, unions of several non-null types, decimals, other logical
types) returns None and the caller keeps the ``to_avro`` re-encoding. Like ``to_avro``,
the result is the *canonical* (shortest) encoding, so a body with an over-long varint is
flagged as well.

Code size matters as much as arithmetic here: whole-stage code over HotSpot's 8,000-bytecode
limit for one method is never JIT-compiled and runs interpreted (several times slower). A
varint's size compares one magnitude with up to 9 thresholds; written as one expression,
each comparison would regenerate the magnitude (struct field, byte length, ...).
:func:`sized` therefore returns the magnitudes as separate columns for a projection of their
own, and the size as an expression over those columns.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:
    from pyspark.sql import Column

_FIXED_SIZE = {"null": 0, "boolean": 1, "float": 4, "double": 8}
#: logical types whose Spark value maps back to the encoded int/long
_INT_LOGICAL = {"date": "unix_date", "timestamp-millis": "unix_millis", "timestamp-micros": "unix_micros"}
#: threshold steps per magnitude kind: an int's zig-zag varint has at most 5 bytes, a long's 10
_STEPS = {"int": 4, "length": 4, "long": 9}


def magnitude(value: Column, kind: str) -> Column:
    """``a`` with zigzag(v) = 2a + sign: a = v XOR (v >> 63), i.e. v for v >= 0 and -v - 1
    below; a length is its own magnitude (zigzag = 2 * length)."""
    from pyspark.sql import functions as F

    if kind == "length":
        return value
    if kind == "int":
        return value.bitwiseXOR(F.shiftright(value, 31))
    value = value.cast("long")
    return value.bitwiseXOR(F.shiftright(value, 63))


def varint_size_of(a: Column, kind: str) -> Column:
    """Bytes of the varint of a magnitude ``a``: zigzag < 2^(7k) exactly when a < 2^(7k-1).
    A CASE ladder: most values stop at the first comparison, and it generates less code than
    a sum of comparisons (each ``+`` is an overflow-checked add under ANSI mode)."""
    from pyspark.sql import functions as F

    size = F.when(a < F.lit(1 << 6), F.lit(1))
    for k in range(2, _STEPS[kind] + 1):
        size = size.when(a < F.lit(1 << (7 * k - 1)), F.lit(k))
    return size.otherwise(F.lit(_STEPS[kind] + 1))


class _Sizer:
    """Builds the size of one schema: magnitudes to materialise, and the sum over them."""

    def __init__(self) -> None:
        self.magnitudes: list[tuple[Column, str]] = []
        self.names: dict[str, Any] = {}

    def varint(self, value: Column, kind: str) -> Callable[[list[Column]], Column]:
        index = len(self.magnitudes)
        self.magnitudes.append((magnitude(value, kind), kind))
        return lambda cols: varint_size_of(cols[index], kind)

    def register(self, schema: dict[str, Any], namespace: str | None) -> str | None:
        """Remember a named type (by full and short name); returns its namespace."""
        space = schema.get("namespace", namespace)
        full = schema["name"] if "." in schema["name"] or not space else f"{space}.{schema['name']}"
        self.names[full] = self.names[schema["name"]] = schema
        return space

    def fields(self, value: Column, record: dict[str, Any], namespace: str | None) -> dict[str, Callable[[list[Column]], Column]] | None:
        """Each field's size of a (registered) record schema; None when one is not covered."""
        parts = {}
        for field in record["fields"]:
            part = self.size(value[field["name"]], field["type"], namespace)
            if part is None:
                return None
            parts[field["name"]] = part
        return parts

    def size(self, value: Column, schema: Any, namespace: str | None) -> Callable[[list[Column]], Column] | None:
        from pyspark.sql import functions as F

        if isinstance(schema, str):
            if schema in _FIXED_SIZE:
                return lambda _cols, n=_FIXED_SIZE[schema]: F.lit(n)
            if schema in ("int", "long"):
                return self.varint(value, schema)
            if schema in ("string", "bytes"):
                length = F.octet_length(value) if schema == "string" else F.length(value)
                index = len(self.magnitudes)
                self.magnitudes.append((length, "length"))
                return lambda cols: varint_size_of(cols[index], "length") + cols[index]
            named = self.names.get(schema) or self.names.get(f"{namespace}.{schema}" if namespace else schema)
            return None if named is None else self.size(value, named, namespace)
        if isinstance(schema, list):
            branches = [b for b in schema if b != "null"]
            if len(branches) != 1 or len(schema) > 2:
                return None  # Spark makes a struct of member0, member1, ...: keep to_avro
            inner = self.size(value, branches[0], namespace)
            if inner is None:
                return None
            if len(schema) == 1:
                return lambda cols: F.lit(1) + inner(cols)
            return lambda cols: F.when(value.isNull(), F.lit(1)).otherwise(F.lit(1) + inner(cols))
        if not isinstance(schema, dict):
            return None
        kind = schema.get("type")
        logical = schema.get("logicalType")
        if kind in ("record", "enum", "fixed"):
            namespace = self.register(schema, namespace)
        if kind == "record":
            fields = self.fields(value, schema, namespace)
            if fields is None:
                return None
            parts = list(fields.values())
            return lambda cols: sum((part(cols) for part in parts), F.lit(0))
        if kind == "enum":
            return (lambda _cols: F.lit(1)) if len(schema["symbols"]) <= 64 else None
        if kind == "fixed":
            return None if logical else (lambda _cols, n=int(schema["size"]): F.lit(n))
        if logical:
            if kind in ("int", "long") and logical in _INT_LOGICAL:
                return self.varint(getattr(F, _INT_LOGICAL[logical])(value), kind)
            if kind == "string" and logical == "uuid":
                return self.size(value, "string", namespace)
            return None
        if isinstance(kind, (str, list)):
            return self.size(value, kind, namespace)
        return None


def sized(value: Column, schema_json: str, prefix: str) -> tuple[list[Column], Column] | None:
    """Size of ``value`` (a ``from_avro`` result of ``schema_json``) in two steps: the
    magnitude columns (aliased ``<prefix>0``, ``<prefix>1``, ...) to select first, and the
    size expression over them. None when the schema has a type this arithmetic does not cover."""
    from pyspark.sql import functions as F

    sizer = _Sizer()
    total = sizer.size(value, json.loads(schema_json), None)
    if total is None:
        return None
    columns = [expr.alias(f"{prefix}{i}") for i, (expr, _kind) in enumerate(sizer.magnitudes)]
    return columns, total([F.col(f"{prefix}{i}") for i in range(len(columns))])


def field_sizes(record: Column, schema_json: str, prefix: str) -> tuple[list[Column], dict[str, Column]] | None:
    """:func:`sized` per top-level field of a record schema: the magnitude columns to select
    first, and each field's size over them (the record's size is their sum). None when a
    field has a type this arithmetic does not cover."""
    from pyspark.sql import functions as F

    schema = json.loads(schema_json)
    sizer = _Sizer()
    parts = sizer.fields(record, schema, sizer.register(schema, None))
    if parts is None:
        return None
    columns = [F.col(f"{prefix}{i}") for i in range(len(sizer.magnitudes))]
    magnitudes = [expr.alias(f"{prefix}{i}") for i, (expr, _kind) in enumerate(sizer.magnitudes)]
    return magnitudes, {name: part(columns) for name, part in parts.items()}


def encoded_size(value: Column, schema_json: str) -> Column | None:
    """The same size as one expression (magnitudes inline): for tests and small schemas."""
    sizer = _Sizer()
    total = sizer.size(value, json.loads(schema_json), None)
    return None if total is None else total([expr for expr, _kind in sizer.magnitudes])
