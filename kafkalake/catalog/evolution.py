"""Table schema evolution: a new reader schema's fields become the Iceberg table's columns.

docs/architecture.md: Schema changes are checked before they exist; Any engine reads the lake.

A table's columns follow its subject's reader schema (:func:`reader_struct`: the Iceberg types
Spark's Avro reader gives each field). A new version may change the table only in ways Iceberg
expresses without rewriting a data file:

* a new field becomes a new column whose v3 default (``initial-default`` = ``write-default``)
  is the Avro default: files written before the column existed read it, through every engine;
* a type is widened where Iceberg allows it: int -> long, float -> double, decimal(P,S) ->
  decimal(P',S) with P' > P; a required field may become optional;
* a field the reader dropped keeps its column (new rows write null).

Anything else the registry's compatibility rules let through (int -> double, long -> float,
string <-> bytes, a record turned into a string, ...) is refused by :func:`plan_evolution` with
one line, before the version is registered. The planning works on plain JSON (Avro schemas,
Iceberg schema JSON) and needs no JVM; :func:`evolve_table` applies a plan to a table through
Iceberg's Java API (format v3 metadata is written by Java only), in one commit, idempotently:
it plans against the table's current schema, so a second call finds nothing to do.
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from kafkalake.catalog.iceberg import with_retry
from kafkalake.errors import ExitCode, KafkalakeError

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

ALLOWED = "allowed: int->long, float->double, decimal widening, new optional fields"
#: primitive widenings Iceberg applies to existing data files without rewriting them
PROMOTIONS = frozenset({("int", "long"), ("float", "double")})
#: what Spark's Avro reader makes of a union of several numeric types
PROMOTION_SOURCES = {"long": ("int", "long"), "double": ("float", "double")}
_DECIMAL = re.compile(r"^decimal\((\d+),\s*(\d+)\)$")
_AVRO_PRIMITIVES = {"boolean": "boolean", "int": "int", "long": "long", "float": "float", "double": "double",
                    "bytes": "binary", "string": "string"}
_LOGICAL = {"date": "date", "timestamp-millis": "timestamptz", "timestamp-micros": "timestamptz",
            "local-timestamp-millis": "timestamp", "local-timestamp-micros": "timestamp"}
_COMPLEX = ("record", "error", "enum", "fixed", "array", "map")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class EvolutionError(KafkalakeError):
    """A schema change the stream's Iceberg table cannot express; nothing was changed."""

    exit_code = ExitCode.MIGRATION


@dataclass(frozen=True)
class AddedColumn:
    """A new column: ``parent`` is the dotted path of the struct it goes into (None: the table)."""

    parent: str | None
    name: str
    type: Any  # Iceberg type, in Iceberg's schema JSON form ("long", {"type": "struct", ...})
    required: bool
    doc: str | None
    default: Any  # Iceberg's JSON single-value form of the default, or None
    after: str | None  # the sibling it follows (None: it comes first)

    @property
    def path(self) -> str:
        return f"{self.parent}.{self.name}" if self.parent else self.name


@dataclass(frozen=True)
class Promotion:
    path: str
    old: str
    new: str


@dataclass(frozen=True)
class EvolutionPlan:
    """What a table needs to read and write a reader schema; empty when it already does."""

    table: str
    added: tuple[AddedColumn, ...] = ()
    promoted: tuple[Promotion, ...] = ()
    made_optional: tuple[str, ...] = ()
    #: fields the reader no longer has: their columns stay, new rows write null
    kept: tuple[str, ...] = ()

    @property
    def empty(self) -> bool:
        return not (self.added or self.promoted or self.made_optional)

    def describe(self) -> str:
        """One line: what changes in the table (or that nothing does)."""
        parts = [f"add {a.path} {_show(a.type)}" + (f" default {json.dumps(a.default)}" if a.default is not None
                                                     else "") for a in self.added]
        parts += [f"{p.path} {p.old} -> {p.new}" for p in self.promoted]
        parts += [f"{path} optional" for path in self.made_optional]
        parts += [f"keep {path} (new rows null)" for path in self.kept]
        return f"{self.table}: " + ("; ".join(parts) if parts else "schema up to date")

    def to_json(self) -> dict[str, Any]:
        return {"table": self.table, "added": [a.path for a in self.added],
                "promoted": {p.path: f"{p.old} -> {p.new}" for p in self.promoted},
                "made_optional": list(self.made_optional), "kept": list(self.kept)}


# --------------------------------------------------------------------------- Avro -> Iceberg

def reader_struct(avro_record: Mapping[str, Any]) -> dict[str, Any]:
    """The table columns a reader schema (an Avro record, as JSON) gives, in Iceberg's schema
    JSON form without ids: the types Spark's Avro reader produces, converted as Iceberg converts
    Spark's, docs and defaults (``initial-default``) from the Avro fields. Top-level columns are
    optional (a decoded row's fields are nullable in Spark), nested ones follow the Avro unions."""
    if not isinstance(avro_record, Mapping) or avro_record.get("type") != "record":
        raise EvolutionError("a table's reader schema must be an Avro record")
    struct = _record(avro_record, _names(avro_record))
    for column in struct["fields"]:
        column["required"] = False
    return struct


def _names(schema: Any, found: dict[str, Any] | None = None, namespace: str = "") -> dict[str, Any]:
    """Every named type (record, enum, fixed) of a schema, by full and short name."""
    found = {} if found is None else found
    if isinstance(schema, list):
        for branch in schema:
            _names(branch, found, namespace)
    elif isinstance(schema, Mapping):
        kind = schema.get("type")
        if kind in ("record", "error", "enum", "fixed") and "name" in schema:
            name = str(schema["name"])
            space, short = name.rsplit(".", 1) if "." in name else (str(schema.get("namespace", namespace)), name)
            found[short] = found[f"{space}.{short}" if space else short] = schema
            namespace = space
        for field in schema.get("fields", ()) if kind in ("record", "error") else ():
            _names(field.get("type"), found, namespace)
        for key in ("items", "values"):
            if key in schema:
                _names(schema[key], found, namespace)
        if isinstance(kind, (Mapping, list)):
            _names(kind, found, namespace)
    return found


def _resolve(schema: Any, names: Mapping[str, Any]) -> Any:
    while isinstance(schema, str) and schema not in _AVRO_PRIMITIVES and schema != "null":
        if schema not in names:
            raise EvolutionError(f"the reader schema refers to an unknown type {schema!r}")
        schema = names[schema]
    if isinstance(schema, Mapping) and "logicalType" not in schema:
        kind = schema.get("type")
        if isinstance(kind, (Mapping, list)) or (isinstance(kind, str) and kind not in _COMPLEX):
            return _resolve(kind, names)  # {"type": "string"}, {"type": "a.Named"}, {"type": {...}}
    return schema


def _record(schema: Mapping[str, Any], names: Mapping[str, Any]) -> dict[str, Any]:
    fields = []
    for avro_field in schema.get("fields", ()):
        iceberg_type, required, first = _convert(avro_field["type"], names)
        column: dict[str, Any] = {"name": avro_field["name"], "required": required, "type": iceberg_type}
        if avro_field.get("doc"):
            column["doc"] = avro_field["doc"]
        if avro_field.get("default") is not None:
            value = _default_json(first, avro_field["default"], iceberg_type, names)
            if value is not None:
                column["initial-default"] = column["write-default"] = value
        fields.append(column)
    return {"type": "struct", "fields": fields}


def _convert(schema: Any, names: Mapping[str, Any]) -> tuple[Any, bool, Any]:
    """(Iceberg type, required, the Avro branch a default belongs to) of an Avro type."""
    schema = _resolve(schema, names)
    if isinstance(schema, list):
        branches = [_resolve(b, names) for b in schema]
        real = [b for b in branches if b != "null"]
        if not real:
            raise EvolutionError("a field of type null cannot be a table column")
        if len(real) == 1:
            return _convert(real[0], names)[0], len(real) == len(branches), branches[0]
        kinds = [_convert(b, names)[0] for b in real]
        for wide in ("long", "double"):  # Spark reads int|long as long, float|double as double
            if set(kinds) <= set(PROMOTION_SOURCES[wide]):
                return wide, len(real) == len(branches), branches[0]
        members = [{"name": f"member{i}", "required": False, "type": kind} for i, kind in enumerate(kinds)]
        return {"type": "struct", "fields": members}, len(real) == len(branches), None
    if isinstance(schema, str):
        return _AVRO_PRIMITIVES[schema], True, schema
    kind, logical = schema.get("type"), schema.get("logicalType")
    if logical == "decimal" and kind in ("bytes", "fixed"):
        return f"decimal({int(schema['precision'])}, {int(schema.get('scale', 0))})", True, schema
    if logical in _LOGICAL and kind in ("int", "long"):
        return _LOGICAL[logical], True, schema
    if kind in ("record", "error"):
        return _record(schema, names), True, schema
    if kind == "enum":
        return "string", True, schema
    if kind == "fixed":
        return "binary", True, schema
    if kind == "array":
        element, required, _ = _convert(schema["items"], names)
        return {"type": "list", "element": element, "element-required": required}, True, schema
    if kind == "map":
        value, required, _ = _convert(schema["values"], names)
        return {"type": "map", "key": "string", "value": value, "value-required": required}, True, schema
    if kind in _AVRO_PRIMITIVES:
        return _AVRO_PRIMITIVES[kind], True, schema
    raise EvolutionError(f"Avro type {json.dumps(schema)[:80]} has no table column type")



def _default_json(avro: Any, value: Any, iceberg_type: Any, names: Mapping[str, Any]) -> Any:
    """An Avro default as Iceberg's JSON single value of the column's type (None: not storable,
    e.g. a record, array or map default; such a column gets no default)."""
    avro = _resolve(avro, names)
    logical = avro.get("logicalType") if isinstance(avro, Mapping) else None
    if iceberg_type in ("boolean", "string") or (iceberg_type in ("int", "long") and logical is None):
        return value
    if iceberg_type in ("float", "double"):
        return float(value)
    if iceberg_type == "binary" and isinstance(value, str):
        return value.encode("latin-1").hex()
    if iceberg_type == "date":
        return (date(1970, 1, 1) + timedelta(days=int(value))).isoformat()
    if iceberg_type in ("timestamptz", "timestamp"):
        micros = int(value) * (1000 if str(logical).endswith("millis") else 1)
        stamp = (_EPOCH + timedelta(microseconds=micros)).isoformat(timespec="microseconds")
        return stamp if iceberg_type == "timestamptz" else stamp.removesuffix("+00:00")
    match = _DECIMAL.match(iceberg_type) if isinstance(iceberg_type, str) else None
    if match and isinstance(value, str):
        unscaled = int.from_bytes(value.encode("latin-1"), "big", signed=True)
        return str(Decimal(unscaled).scaleb(-int(match.group(2))))
    return None


# --------------------------------------------------------------------------- the plan

def check_evolution(old_reader: Mapping[str, Any], new_reader: Mapping[str, Any], table: str) -> EvolutionPlan:
    """What moving a table's reader from ``old_reader`` to ``new_reader`` (Avro records, as
    JSON) does to it; raises :class:`EvolutionError` (one line) when Iceberg cannot express it."""
    return plan_evolution(reader_struct(old_reader), reader_struct(new_reader), table)


def plan_evolution(current: Mapping[str, Any], target: Mapping[str, Any], table: str, *,
                   ignore: Collection[str] = ()) -> EvolutionPlan:
    """The changes that make a table with schema ``current`` hold rows of ``target`` (both in
    Iceberg's schema JSON form; ``current`` may be a table's schema, ids and all). Top-level
    columns named in ``ignore`` (the Kafka columns) are not reader fields."""
    out = _Plan(table)
    out.struct(current["fields"], target["fields"], None, ignore)
    return EvolutionPlan(table, tuple(out.added), tuple(out.promoted), tuple(out.made_optional), tuple(out.kept))


class _Plan:
    def __init__(self, table: str) -> None:
        self.table = table
        self.added: list[AddedColumn] = []
        self.promoted: list[Promotion] = []
        self.made_optional: list[str] = []
        self.kept: list[str] = []

    def refuse(self, path: str, old: Any, new: Any) -> EvolutionError:
        return EvolutionError(f"field {path}: {_show(old)} -> {_show(new)} cannot be expressed in the Iceberg "
                              f"table {self.table} ({ALLOWED})")

    def struct(self, current: list[Mapping[str, Any]], target: list[Mapping[str, Any]], parent: str | None,
               ignore: Collection[str] = ()) -> None:
        by_name = {c["name"]: c for c in current}
        previous = None
        for column in target:
            path = f"{parent}.{column['name']}" if parent else column["name"]
            existing = by_name.get(column["name"])
            if existing is None:
                self.add(column, parent, previous, path)
            else:
                self.type(existing["type"], column["type"], path)
                if existing.get("required") and not column.get("required"):
                    self.made_optional.append(path)
            previous = column["name"]
        wanted = {c["name"] for c in target}
        self.kept += [f"{parent}.{c['name']}" if parent else c["name"] for c in current
                      if c["name"] not in wanted and not (parent is None and c["name"] in ignore)]

    def add(self, column: Mapping[str, Any], parent: str | None, previous: str | None, path: str) -> None:
        default = column.get("initial-default")
        if column.get("required") and default is None:
            raise EvolutionError(f"field {path}: a new required field needs a default the Iceberg table "
                                 f"{self.table} can give the rows written before it (or a null branch)")
        self.added.append(AddedColumn(parent, column["name"], _strip_ids(column["type"]), bool(column.get("required")),
                                      column.get("doc"), default, previous))

    def type(self, old: Any, new: Any, path: str) -> None:
        if isinstance(old, str) and isinstance(new, str):
            if old == new or _widens(new, old):  # a wider column takes the narrower values as they are
                return
            if _widens(old, new):
                self.promoted.append(Promotion(path, old, new))
                return
            raise self.refuse(path, old, new)
        kind = old.get("type") if isinstance(old, Mapping) else None
        if not isinstance(new, Mapping) or new.get("type") != kind:
            raise self.refuse(path, old, new)
        if kind == "struct":
            self.struct(old["fields"], new["fields"], path)
            return
        part = "element" if kind == "list" else "value"
        if kind == "map" and old["key"] != new["key"]:
            raise self.refuse(f"{path}.key", old["key"], new["key"])
        self.type(old[part], new[part], f"{path}.{part}")
        if old.get(f"{part}-required") and not new.get(f"{part}-required"):
            self.made_optional.append(f"{path}.{part}")


def _widens(old: str, new: str) -> bool:
    """Iceberg promotes ``old`` to ``new`` in place."""
    if (old, new) in PROMOTIONS:
        return True
    a, b = _DECIMAL.match(old), _DECIMAL.match(new)
    return bool(a and b and a.group(2) == b.group(2) and int(b.group(1)) > int(a.group(1)))


def _show(iceberg_type: Any) -> str:
    if isinstance(iceberg_type, str):
        return iceberg_type
    kind = iceberg_type.get("type")
    if kind == "list":
        return f"list<{_show(iceberg_type['element'])}>"
    if kind == "map":
        return f"map<{_show(iceberg_type['key'])}, {_show(iceberg_type['value'])}>"
    return str(kind)


_IDS = ("id", "element-id", "key-id", "value-id")


def _strip_ids(iceberg_type: Any) -> Any:
    if isinstance(iceberg_type, Mapping):
        return {k: _strip_ids(v) for k, v in iceberg_type.items() if k not in _IDS}
    if isinstance(iceberg_type, list):
        return [_strip_ids(v) for v in iceberg_type]
    return iceberg_type


def with_reader_details(struct: Mapping[str, Any], reader: Mapping[str, Any]) -> dict[str, Any]:
    """``struct`` (the Iceberg schema Spark's rows give) with the docs and defaults of
    ``reader`` (:func:`reader_struct`) at every level, where the two have the field."""
    def overlay(fields: list[Any], details: list[Any]) -> list[Any]:
        by_name = {d["name"]: d for d in details}
        out = []
        for column in fields:
            column, detail = dict(column), by_name.get(column["name"])
            if detail is not None:
                for key in ("doc", "initial-default", "write-default"):
                    if key in detail:
                        column[key] = detail[key]
                column["type"] = overlay_type(column["type"], detail["type"])
            out.append(column)
        return out

    def overlay_type(kind: Any, detail: Any) -> Any:
        if isinstance(kind, Mapping) and isinstance(detail, Mapping) and kind.get("type") == detail.get("type"):
            kind = dict(kind)
            if kind["type"] == "struct":
                kind["fields"] = overlay(kind["fields"], detail["fields"])
            for part in ("element", "value"):
                if part in kind:
                    kind[part] = overlay_type(kind[part], detail[part])
        return kind

    return {**struct, "fields": overlay(list(struct["fields"]), list(reader["fields"]))}


# --------------------------------------------------------------------------- the JVM side

def evolve_table(spark: SparkSession, table: Any, target: Mapping[str, Any], name: str, *,
                 ignore: Collection[str] = ()) -> EvolutionPlan:
    """Bring the Java ``table`` to ``target`` (Iceberg schema JSON): plan against its current
    schema, apply the plan in one schema commit. Idempotent (an up-to-date table is left as it
    is); a commit that lost a race with another writer is planned and applied again."""
    parser = spark._jvm.org.apache.iceberg.SchemaParser

    def attempt() -> EvolutionPlan:
        table.refresh()
        plan = plan_evolution(json.loads(parser.toJson(table.schema())), target, name, ignore=ignore)
        if not plan.empty:
            _apply(spark, table, plan)
        return plan

    return with_retry(attempt, f"evolve the schema of {name}")


def _apply(spark: SparkSession, table: Any, plan: EvolutionPlan) -> None:
    jvm = spark._jvm
    update = table.updateSchema()
    for column in plan.added:
        field = _java_field(jvm, column)
        add = update.addRequiredColumn if column.required else update.addColumn
        add(column.parent, column.name, field.type(), column.doc, field.initialDefaultLiteral())
        if column.after is not None:
            update.moveAfter(column.path, f"{column.parent}.{column.after}" if column.parent else column.after)
        else:
            update.moveFirst(column.path)
    for promotion in plan.promoted:
        update.updateColumn(promotion.path, jvm.org.apache.iceberg.types.Types.fromPrimitiveString(promotion.new))
    for path in plan.made_optional:
        update.makeColumnOptional(path)
    update.commit()


def _java_field(jvm: Any, column: AddedColumn) -> Any:
    """The column as a Java ``NestedField`` (its type and default parsed by Iceberg itself)."""
    counter = iter(range(1, 1_000_000))

    def with_ids(kind: Any) -> Any:
        if not isinstance(kind, Mapping):
            return kind
        kind = dict(kind)
        if kind["type"] == "struct":
            kind["fields"] = [{**f, "id": next(counter), "type": with_ids(f["type"])} for f in kind["fields"]]
        elif kind["type"] == "list":
            kind["element-id"], kind["element"] = next(counter), with_ids(kind["element"])
        elif kind["type"] == "map":
            kind["key-id"], kind["value-id"], kind["value"] = next(counter), next(counter), with_ids(kind["value"])
        return kind

    doc: dict[str, Any] = {"id": next(counter), "name": column.name, "required": column.required,
                           "type": with_ids(column.type)}
    if column.default is not None:
        doc["initial-default"] = doc["write-default"] = column.default
    schema = jvm.org.apache.iceberg.SchemaParser.fromJson(json.dumps({"type": "struct", "schema-id": 0,
                                                                     "fields": [doc]}))
    return schema.findField(column.name)


