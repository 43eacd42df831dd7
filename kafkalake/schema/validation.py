"""Validity gates a schema text passes before it is compared or stored.

JSON syntax, Avro validity (``avro`` and ``fastavro``), then defaults that match their types.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import avro.schema
from avro.schema import (
    ArraySchema,
    EnumSchema,
    FixedSchema,
    MapSchema,
    NamedSchema,
    RecordSchema,
    UnionSchema,
)

from kafkalake.schema.model import SchemaError, ValidatedSchema


def validate_schema_text(text: str, *, source: str = "schema") -> ValidatedSchema:
    """Run the validity gates (JSON, Avro, defaults); raise SchemaError naming the first failure.

    Both ``avro`` and ``fastavro`` must accept the schema because producers use fastavro
    and the compatibility checker uses avro; defaults are checked here because neither
    library refuses a default that does not match its type (the notebook's ``"default": "1"``
    on ``["null", "string"]``), while Java readers do.
    """
    import fastavro
    from fastavro.schema import fingerprint, to_parsing_canonical_form

    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        hint = " (is a comma missing before it?)" if exc.msg == "Expecting ',' delimiter" else ""
        raise SchemaError(f"{source}: invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}{hint}") from None
    if not isinstance(document, (dict, list, str)):
        raise SchemaError(f"{source}: an Avro schema is a JSON object, array or string, not {type(document).__name__}")
    try:
        schema = avro.schema.parse(text)
    except Exception as exc:  # the parser raises many types for bad input; all mean "invalid"
        raise SchemaError(f"{source}: not a valid Avro schema: {_one_line(exc)}") from None
    problems = default_problems(schema)
    if problems:
        raise SchemaError(f"{source}: " + "; ".join(problems))
    try:
        parsed = fastavro.parse_schema(document)
    except Exception as exc:
        raise SchemaError(f"{source}: fastavro refuses the schema: {_one_line(exc)}") from None

    canonical = to_parsing_canonical_form(document)
    stored = pretty_schema_json(document)
    extras = json.dumps(list(_resolution_extras(parsed, "")), sort_keys=True)
    return ValidatedSchema(
        stored_text=stored,
        schema=schema,
        canonical_form=canonical,
        fingerprint="sha256:" + fingerprint(canonical, "SHA-256"),
        identity=canonical + "\n" + extras,
    )


def pretty_schema_json(document: Any, *, width: int = 100) -> str:
    """The stored text: indented JSON, but each short node (a field, a union) on one line.

    One field per line keeps git diffs and reviews of schema changes readable.
    """
    return _pretty(document, 0, width) + "\n"


def _pretty(node: Any, indent: int, width: int) -> str:
    flat = json.dumps(node, ensure_ascii=False)
    if (indent > 0 and indent + len(flat) <= width) or not isinstance(node, (dict, list)) or not node:
        return flat
    pad = " " * (indent + 2)
    if isinstance(node, dict):
        items = [f"{pad}{json.dumps(k, ensure_ascii=False)}: {_pretty(v, indent + 2, width)}" for k, v in node.items()]
        return "{\n" + ",\n".join(items) + "\n" + " " * indent + "}"
    items = [f"{pad}{_pretty(v, indent + 2, width)}" for v in node]
    return "[\n" + ",\n".join(items) + "\n" + " " * indent + "]"


def default_problems(schema: avro.schema.Schema) -> list[str]:
    """Every field default that does not match its type, with its location and a fix.

    For a union the default must match the FIRST branch (Avro spec); record fields are
    checked recursively, including records inside unions, arrays and maps.
    """
    problems: list[str] = []
    _collect_default_problems(schema, "", set(), problems)
    return problems


def _collect_default_problems(schema: Any, path: str, seen: set[str], problems: list[str]) -> None:

    if isinstance(schema, RecordSchema):
        if schema.fullname in seen:
            return
        seen.add(schema.fullname)
        for i, record_field in enumerate(schema.fields):
            field_path = f"{path}/fields/{i}"
            if record_field.has_default:
                why = _default_mismatch(record_field.type, record_field.default)
                if why:
                    problems.append(
                        f"field '{record_field.name}' at {field_path}: default "
                        f"{json.dumps(record_field.default)} {why}"
                    )
            _collect_default_problems(record_field.type, f"{field_path}/type", seen, problems)
    elif isinstance(schema, UnionSchema):
        for j, branch in enumerate(schema.schemas):
            _collect_default_problems(branch, f"{path}/{j}", seen, problems)
    elif isinstance(schema, ArraySchema):
        _collect_default_problems(schema.items, f"{path}/items", seen, problems)
    elif isinstance(schema, MapSchema):
        _collect_default_problems(schema.values, f"{path}/values", seen, problems)
    elif isinstance(schema, EnumSchema):
        enum_default = schema.props.get("default")
        if enum_default is not None and enum_default not in schema.symbols:
            problems.append(
                f"enum '{schema.fullname}' at {path or '/'}: default {json.dumps(enum_default)} "
                f"is not one of its symbols {list(schema.symbols)}"
            )


def _default_mismatch(schema: Any, value: Any) -> str | None:
    """Why ``value`` is not a valid JSON default for ``schema`` (None when it is)."""

    if isinstance(schema, UnionSchema):
        first = schema.schemas[0]
        if _value_matches(first, value):
            return None
        fitting = [b for b in schema.schemas[1:] if _value_matches(b, value)]
        fix = (
            f"put {json.dumps(_type_name(fitting[0]))} first in the union or use a default of type "
            f"{json.dumps(_type_name(first))}"
            if fitting
            else f"use a default of type {json.dumps(_type_name(first))}"
        )
        if _type_name(first) == "null":
            fix = "use \"default\": null" + (
                f" (or put {json.dumps(_type_name(fitting[0]))} first in the union)" if fitting else ""
            )
        return (
            f"does not match the union's first branch {json.dumps(_type_name(first))}: "
            f"a union default must match its first type; {fix}"
        )
    if _value_matches(schema, value):
        return None
    return f"does not match type {json.dumps(_type_name(schema))}; give a default of that type"


_INT_RANGE = (-(2**31), 2**31 - 1)
_LONG_RANGE = (-(2**63), 2**63 - 1)


def _value_matches(schema: Any, value: Any) -> bool:
    """Does a JSON default value fit this (non-union branch or any) schema? Spec section 'default'."""

    kind = schema.type
    if isinstance(schema, UnionSchema):
        return _value_matches(schema.schemas[0], value)
    if kind == "null":
        return value is None
    if kind == "boolean":
        return isinstance(value, bool)
    if kind in ("int", "long"):
        low, high = _INT_RANGE if kind == "int" else _LONG_RANGE
        return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high
    if kind in ("float", "double"):
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind == "string":
        return isinstance(value, str)
    if kind == "bytes":
        return isinstance(value, str) and all(ord(c) < 256 for c in value)
    if isinstance(schema, FixedSchema):
        return isinstance(value, str) and len(value) == schema.size and all(ord(c) < 256 for c in value)
    if isinstance(schema, EnumSchema):
        return isinstance(value, str) and value in schema.symbols
    if isinstance(schema, ArraySchema):
        return isinstance(value, list) and all(_value_matches(schema.items, v) for v in value)
    if isinstance(schema, MapSchema):
        return isinstance(value, dict) and all(_value_matches(schema.values, v) for v in value.values())
    if isinstance(schema, RecordSchema):
        if not isinstance(value, dict):
            return False
        for record_field in schema.fields:
            if record_field.name in value:
                if not _value_matches(record_field.type, value[record_field.name]):
                    return False
            elif not record_field.has_default:
                return False
        return True
    return False


_RESOLUTION_KEYS = ("default", "aliases", "logicalType", "precision", "scale", "size", "order")


def _resolution_extras(node: Any, path: str) -> Iterator[tuple[str, str, Any]]:
    """What Parsing Canonical Form drops but readers use: two schemas differing here differ."""
    if isinstance(node, list):
        for j, branch in enumerate(node):
            yield from _resolution_extras(branch, f"{path}/{j}")
    elif isinstance(node, dict):
        for key in _RESOLUTION_KEYS:
            if key in node:
                yield (path, key, node[key])
        for key in ("items", "values"):
            if key in node:
                yield from _resolution_extras(node[key], f"{path}/{key}")
        if node.get("type") == "record" or node.get("type") == "error":
            for i, record_field in enumerate(node.get("fields", [])):
                for key in _RESOLUTION_KEYS:
                    if key in record_field:
                        yield (f"{path}/fields/{i}", key, record_field[key])
                yield from _resolution_extras(record_field.get("type"), f"{path}/fields/{i}/type")
        elif isinstance(node.get("type"), (dict, list)):
            yield from _resolution_extras(node["type"], f"{path}/type")


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def _type_name(schema: Any) -> str:
    """How a person writes the type: "string", "example.avro.User", "[null, double]"."""

    if isinstance(schema, UnionSchema):
        return "[" + ", ".join(_type_name(b) for b in schema.schemas) + "]"
    if isinstance(schema, NamedSchema):
        return schema.fullname
    if isinstance(schema, ArraySchema):
        return f"array<{_type_name(schema.items)}>"
    if isinstance(schema, MapSchema):
        return f"map<{_type_name(schema.values)}>"
    return str(schema.type)
