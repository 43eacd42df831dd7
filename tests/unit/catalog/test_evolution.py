"""Table schema evolution, the pure half: which reader changes a table can follow, and how.

docs/architecture.md: Schema changes are checked before they exist.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from kafkalake.catalog.evolution import (
    EvolutionError,
    check_evolution,
    plan_evolution,
    reader_struct,
    with_reader_details,
)
from kafkalake.errors import ExitCode

REPO = Path(__file__).resolve().parents[3]
V1 = json.loads((REPO / "schemas" / "fridge" / "v1.avsc").read_text())


def _with(*fields: dict[str, Any], drop: tuple[str, ...] = (), retype: dict[str, Any] | None = None) -> dict[str, Any]:
    kept = [{**f, "type": (retype or {}).get(f["name"], f["type"])} for f in V1["fields"] if f["name"] not in drop]
    return {**V1, "fields": [*kept, *fields]}


def _refused(old: dict[str, Any], new: dict[str, Any]) -> str:
    with pytest.raises(EvolutionError) as err:
        check_evolution(old, new, "fridge")
    message = str(err.value)
    assert "\n" not in message and err.value.exit_code is ExitCode.MIGRATION
    return message


def test_new_fields_are_added_with_their_defaults_docs_and_places() -> None:
    new = _with({"name": "door", "type": "string", "default": "closed", "doc": "door state"},
                {"name": "temperature", "type": ["null", "double"], "default": None},
                {"name": "level", "type": ["long", "null"], "default": 3})
    plan = check_evolution(V1, new, "fridge")
    added = {a.name: a for a in plan.added}
    assert list(added) == ["door", "temperature", "level"] and not plan.promoted and not plan.kept
    door = added["door"]
    assert (door.parent, door.type, door.required, door.doc, door.default, door.after) == (
        None, "string", False, "door state", "closed", "sendtime")
    assert (added["temperature"].type, added["temperature"].default) == ("double", None)
    assert (added["level"].type, added["level"].default, added["level"].after) == ("long", 3, "temperature")
    assert plan.describe() == ('fridge: add door string default "closed"; add temperature double; '
                               "add level long default 3")
    assert check_evolution(new, new, "fridge").empty  # the same schema again: nothing to do


def test_int_to_long_and_float_to_double_and_decimal_widening_are_promotions() -> None:
    old = _with({"name": "t", "type": "float"}, {"name": "price", "type": {
        "type": "bytes", "logicalType": "decimal", "precision": 9, "scale": 2}})
    new = _with({"name": "t", "type": "double"}, {"name": "price", "type": {
        "type": "bytes", "logicalType": "decimal", "precision": 18, "scale": 2}}, retype={"sendtime": ["long", "null"]})
    plan = check_evolution(old, new, "fridge")
    assert [(p.path, p.old, p.new) for p in plan.promoted] == [
        ("sendtime", "int", "long"), ("t", "float", "double"), ("price", "decimal(9, 2)", "decimal(18, 2)")]
    assert not plan.added and not plan.empty
    # a table already wider than the reader takes its values as they are
    assert check_evolution(new, old, "fridge").empty


@pytest.mark.parametrize(("old", "new", "shown"), [
    ("float", "string", "float -> string"),
    ("int", "double", "int -> double"),
    ("long", "float", "long -> float"),
    ("bytes", "string", "binary -> string"),
    ("string", "bytes", "string -> binary"),
])
def test_changes_iceberg_cannot_express_are_refused_in_one_line(old: str, new: str, shown: str) -> None:
    message = _refused(_with({"name": "temperature", "type": old}), _with({"name": "temperature", "type": new}))
    assert message == (f"field temperature: {shown} cannot be expressed in the Iceberg table fridge "
                       "(allowed: int->long, float->double, decimal widening, new optional fields)")


def test_a_decimal_whose_scale_changes_or_that_narrows_is_refused() -> None:
    def dec(precision: int, scale: int) -> dict[str, Any]:
        return _with({"name": "p", "type": {"type": "bytes", "logicalType": "decimal", "precision": precision,
                                            "scale": scale}})

    assert "decimal(9, 2) -> decimal(12, 3)" in _refused(dec(9, 2), dec(12, 3))


def test_a_removed_field_keeps_its_column() -> None:
    plan = check_evolution(V1, _with(drop=("action",)), "fridge")
    assert plan.empty and plan.kept == ("action",)
    assert plan.describe() == "fridge: keep action (new rows null)"


def test_enum_symbols_added_change_nothing_and_optional_widening_is_planned() -> None:
    enum = {"type": "enum", "name": "Mode", "symbols": ["eco"]}
    old = _with({"name": "mode", "type": enum}, {"name": "loc", "type": {"type": "record", "name": "Loc", "fields": [
        {"name": "room", "type": "string"}]}})
    new = _with({"name": "mode", "type": {**enum, "symbols": ["eco", "boost"]}},
                {"name": "loc", "type": {"type": "record", "name": "Loc", "fields": [
                    {"name": "room", "type": ["null", "string"], "default": None}]}})
    plan = check_evolution(old, new, "fridge")
    assert plan.made_optional == ("loc.room",) and not plan.added and not plan.promoted


def test_nested_fields_are_added_inside_their_record_and_need_a_default_when_required() -> None:
    def loc(*extra: dict[str, Any]) -> dict[str, Any]:
        return _with({"name": "loc", "type": ["null", {"type": "record", "name": "Loc", "fields": [
            {"name": "room", "type": "string"}, *extra]}], "default": None})

    plan = check_evolution(loc(), loc({"name": "floor", "type": "int", "default": 0},
                                      {"name": "lat", "type": ["null", "double"], "default": None}), "fridge")
    assert [(a.parent, a.name, a.type, a.required, a.default, a.after) for a in plan.added] == [
        ("loc", "floor", "int", True, 0, "room"), ("loc", "lat", "double", False, None, "floor")]
    assert "a new required field needs a default" in _refused(loc(), loc({"name": "floor", "type": "int"}))
    # a record that becomes a string is no Iceberg change
    assert "field loc: struct -> string" in _refused(loc(), _with({"name": "loc", "type": ["null", "string"]}))


def test_arrays_and_maps_promote_their_elements_and_logical_types_keep_their_defaults() -> None:
    old = _with({"name": "xs", "type": {"type": "array", "items": "int"}},
                {"name": "m", "type": {"type": "map", "values": "float"}})
    new = _with({"name": "xs", "type": {"type": "array", "items": "long"}},
                {"name": "m", "type": {"type": "map", "values": "double"}},
                {"name": "day", "type": {"type": "int", "logicalType": "date"}, "default": 1},
                {"name": "at", "type": {"type": "long", "logicalType": "timestamp-millis"}, "default": 1500},
                {"name": "raw", "type": "bytes", "default": "\u00ff\u0001"})
    plan = check_evolution(old, new, "fridge")
    assert [(p.path, p.new) for p in plan.promoted] == [("xs.element", "long"), ("m.value", "double")]
    assert {a.name: (a.type, a.default) for a in plan.added} == {
        "day": ("date", "1970-01-02"), "at": ("timestamptz", "1970-01-01T00:00:01.500000+00:00"),
        "raw": ("binary", "ff01")}


def test_a_table_schema_with_ids_and_kafka_columns_plans_against_the_reader() -> None:
    """What the JVM side does: the table's schema JSON (ids, Kafka columns) against the reader."""
    table = {"type": "struct", "schema-id": 0, "fields": [
        {"id": 1, "name": "name", "required": False, "type": "string"},
        {"id": 2, "name": "action", "required": False, "type": "string"},
        {"id": 3, "name": "sendtime", "required": False, "type": "int"},
        {"id": 4, "name": "offset", "required": False, "type": "long"}]}
    target = reader_struct(_with({"name": "door", "type": "string", "default": "closed"},
                                 retype={"sendtime": ["long", "null"]}))
    plan = plan_evolution(table, target, "lake.fridge", ignore=("offset",))
    assert [a.name for a in plan.added] == ["door"] and [p.path for p in plan.promoted] == ["sendtime"]
    assert plan.kept == ()
    evolved = {**table, "fields": [*table["fields"][:2], {**table["fields"][2], "type": "long"}, table["fields"][3],
                                   {"id": 5, "name": "door", "required": False, "type": "string"}]}
    assert plan_evolution(evolved, target, "lake.fridge", ignore=("offset",)).empty  # idempotent


def test_reader_details_are_laid_over_the_columns_spark_gives() -> None:
    reader = reader_struct(_with({"name": "door", "type": "string", "default": "closed", "doc": "door state"}))
    spark_side = {"type": "struct", "fields": [{"id": 9, "name": "door", "required": False, "type": "string"},
                                               {"id": 10, "name": "offset", "required": False, "type": "long"}]}
    merged = with_reader_details(spark_side, reader)
    assert merged["fields"][0] == {"id": 9, "name": "door", "required": False, "type": "string", "doc": "door state",
                                   "initial-default": "closed", "write-default": "closed"}
    assert merged["fields"][1] == spark_side["fields"][1]


def test_named_type_references_resolve() -> None:
    loc = {"type": "record", "name": "Loc", "namespace": "geo", "fields": [{"name": "room", "type": "string"}]}
    struct = reader_struct(_with({"name": "home", "type": loc}, {"name": "work", "type": ["null", "geo.Loc"]}))
    by_name = {f["name"]: f for f in struct["fields"]}
    assert by_name["work"]["type"] == by_name["home"]["type"] == {
        "type": "struct", "fields": [{"name": "room", "required": True, "type": "string"}]}
