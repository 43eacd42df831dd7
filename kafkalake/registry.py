"""The schema registry: a folder in git that is the single source of truth for Avro schemas.

Layout (``schemas/`` by default, :attr:`Settings.schemas_dir`)::

    schemas/_registry.json          index: every (subject, version) and its global schema id
    schemas/<subject>/subject.yaml  per-subject metadata: ``compatibility: BACKWARD``
    schemas/<subject>/v<N>.avsc     the schema text of version N (pretty JSON, as registered)

Readers trust only the index: a ``vN.avsc`` the index does not list (a crashed or
hand-made registration) is ignored, and ``check_all`` reports it. Schema ids are what the
Confluent wire format carries in bytes 1-4, so an id is never reused or changed: ids are
assigned ``max(id) + 1`` and nothing is ever removed from the index.

Registering runs the same gates as Confluent's registry, in order: JSON syntax, Avro
validity (``avro`` and ``fastavro``), defaults that match their types, then the subject's
compatibility mode checked with ``avro.compatibility.ReaderWriterCompatibilityChecker``.
A refused schema changes nothing on disk.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import tempfile
from dataclasses import dataclass, field
from enum import Enum
from functools import cached_property
from pathlib import Path
from typing import Any, Iterator

import avro.schema
import yaml
from avro.compatibility import ReaderWriterCompatibilityChecker, SchemaCompatibilityType, lookup_writer_field
from avro.schema import (
    ArraySchema,
    EnumSchema,
    FixedSchema,
    MapSchema,
    NamedSchema,
    RecordSchema,
    UnionSchema,
)

from kafkalake.errors import KafkalakeError

INDEX_FILE = "_registry.json"
SUBJECT_FILE = "subject.yaml"
INDEX_FORMAT = 1

#: Subject names become folder names and appear in CLI arguments; ``_`` prefixes are
#: reserved for registry files such as ``_registry.json``.
_SUBJECT_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$")
_VERSION_FILE_RE = re.compile(r"^v([1-9][0-9]*)\.avsc$")


class SchemaError(KafkalakeError):
    """A schema or the registry folder is unusable; the message says where and what to fix."""

    exit_code = 1


class SchemaNotFoundError(SchemaError):
    """A subject, version or schema id the registry does not have."""


class IncompatibleSchemaError(SchemaError):
    """Registration refused by the subject's compatibility mode; ``report`` has every reason."""

    def __init__(self, report: CompatibilityReport) -> None:
        self.report = report
        first = report.incompatibilities[0]
        more = len(report.incompatibilities) - 1
        suffix = f" (and {more} more; run `kafkalake schema check` to list them)" if more else ""
        super().__init__(
            f"{report.subject}: schema refused under {report.mode.value}: {first}{suffix}"
        )


class Compatibility(str, Enum):
    """Confluent's compatibility modes: which earlier versions a new one must work with."""

    NONE = "NONE"
    BACKWARD = "BACKWARD"
    BACKWARD_TRANSITIVE = "BACKWARD_TRANSITIVE"
    FORWARD = "FORWARD"
    FORWARD_TRANSITIVE = "FORWARD_TRANSITIVE"
    FULL = "FULL"
    FULL_TRANSITIVE = "FULL_TRANSITIVE"

    @property
    def transitive(self) -> bool:
        """Checked against all earlier versions, not only the latest."""
        return self.value.endswith("_TRANSITIVE")

    @property
    def backward(self) -> bool:
        """The new schema (reader) must read data written with earlier versions."""
        return self.value.startswith(("BACKWARD", "FULL"))

    @property
    def forward(self) -> bool:
        """Earlier versions (readers) must read data written with the new schema."""
        return self.value.startswith(("FORWARD", "FULL"))

    @classmethod
    def parse(cls, value: object, *, where: str) -> Compatibility:
        """Accept any case; refuse unknown modes with the list of valid ones."""
        text = str(value).strip().upper()
        try:
            return cls(text)
        except ValueError:
            names = ", ".join(m.value for m in cls)
            raise SchemaError(f"{where}: unknown compatibility mode {value!r}; use one of {names}") from None


DEFAULT_COMPATIBILITY = Compatibility.BACKWARD


@dataclass(frozen=True)
class SchemaVersion:
    """One registered version: what a wire-format schema id stands for."""

    subject: str
    version: int
    schema_id: int
    #: the schema text exactly as stored in ``v<N>.avsc``
    schema_json: str
    #: ``sha256:<hex>`` of the Parsing Canonical Form (the Avro spec's schema fingerprint)
    fingerprint: str

    @cached_property
    def parsed(self) -> dict[str, Any]:
        """fastavro's parsed schema: what encoders and decoders want (parse once, reuse)."""
        import fastavro

        return fastavro.parse_schema(json.loads(self.schema_json))

    @cached_property
    def avro_schema(self) -> avro.schema.Schema:
        """The ``avro`` package's schema object: what the compatibility checker wants."""
        return avro.schema.parse(self.schema_json)

    @cached_property
    def canonical_form(self) -> str:
        """Parsing Canonical Form: equal for schemas that read and write the same bytes."""
        from fastavro.schema import to_parsing_canonical_form

        return to_parsing_canonical_form(json.loads(self.schema_json))

    @property
    def label(self) -> str:
        return f"{self.subject} v{self.version}"


@dataclass(frozen=True)
class Incompatibility:
    """One reason a reader schema cannot read what a writer schema wrote."""

    #: which schema reads and which wrote, as people say it: "v2 (new)", "v1"
    reader: str
    writer: str
    #: JSON-pointer-like path in the reader schema, from the avro checker ("/fields/0")
    location: str
    #: the checker's incompatibility type (reader_field_missing_default_value, ...)
    kind: str
    #: a sentence a person can act on
    message: str

    def __str__(self) -> str:
        return self.message


@dataclass(frozen=True)
class CompatibilityReport:
    """The answer of :meth:`Registry.check`: may this schema become the next version?"""

    subject: str
    mode: Compatibility
    #: the version the schema would get (or has, when ``existing`` is set)
    version: int
    #: the versions it was checked against
    checked_against: tuple[int, ...]
    incompatibilities: tuple[Incompatibility, ...] = ()
    #: an already registered version equal to the schema: registering it is a no-op
    existing: SchemaVersion | None = None

    @property
    def compatible(self) -> bool:
        return not self.incompatibilities

    def summary(self) -> str:
        """One line for humans: verdict, mode and what was checked."""
        if self.existing is not None:
            return (
                f"{self.subject}: identical to v{self.existing.version} "
                f"(schema id {self.existing.schema_id}); registering it changes nothing"
            )
        against = ", ".join(f"v{v}" for v in self.checked_against) or "nothing (first version)"
        if self.mode is Compatibility.NONE and self.checked_against == ():
            against = "nothing (mode NONE)"
        verdict = "compatible" if self.compatible else "INCOMPATIBLE"
        return f"{self.subject}: {verdict} as v{self.version} under {self.mode.value}, checked against {against}"

    def lines(self) -> list[str]:
        """The summary, then one line per incompatibility."""
        return [self.summary(), *(f"  - {item}" for item in self.incompatibilities)]


@dataclass(frozen=True)
class _IndexEntry:
    schema_id: int
    subject: str
    version: int
    fingerprint: str
    file_sha256: str

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.schema_id,
            "subject": self.subject,
            "version": self.version,
            "fingerprint": self.fingerprint,
            "file_sha256": self.file_sha256,
        }


@dataclass(frozen=True)
class _Index:
    entries: tuple[_IndexEntry, ...] = ()
    by_id: dict[int, _IndexEntry] = field(default_factory=dict)
    by_subject: dict[str, list[_IndexEntry]] = field(default_factory=dict)

    @classmethod
    def build(cls, entries: list[_IndexEntry]) -> _Index:
        by_id: dict[int, _IndexEntry] = {}
        by_subject: dict[str, list[_IndexEntry]] = {}
        for entry in entries:
            by_id.setdefault(entry.schema_id, entry)
            by_subject.setdefault(entry.subject, []).append(entry)
        for versions in by_subject.values():
            versions.sort(key=lambda e: e.version)
        return cls(entries=tuple(entries), by_id=by_id, by_subject=by_subject)

    @property
    def next_id(self) -> int:
        return max((e.schema_id for e in self.entries), default=0) + 1


@dataclass(frozen=True)
class ValidatedSchema:
    """A schema text that passed every validity gate, ready to compare and store."""

    stored_text: str
    schema: avro.schema.Schema
    canonical_form: str
    fingerprint: str
    #: PCF plus what PCF drops but resolution uses (defaults, aliases, logical types)
    identity: str


# --------------------------------------------------------------------------- validation


def validate_schema_text(text: str, *, source: str = "schema") -> ValidatedSchema:
    """Run the validity gates (JSON, Avro, defaults); raise SchemaError naming the first failure.

    Both ``avro`` and ``fastavro`` must accept the schema because producers use fastavro
    and the compatibility checker uses avro; defaults are checked here because neither
    library refuses a default that does not match its type (the seed's ``"default": "1"``
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


# --------------------------------------------------------------------------- compatibility


def compatibility_problems(
    reader: avro.schema.Schema,
    writer: avro.schema.Schema,
    *,
    reader_label: str,
    writer_label: str,
    base_location: str = "",
) -> list[Incompatibility]:
    """Why ``reader`` cannot read data written with ``writer`` (empty when it can).

    The verdict and locations come from avro's ReaderWriterCompatibilityChecker; this
    function only turns each location into a sentence that names the field and the fix.
    """

    result = _LocatingChecker().get_compatibility(reader, writer)
    if result.compatibility is not SchemaCompatibilityType.incompatible:
        return []
    locations = sorted(result.locations, key=_location_sort_key)
    if len(locations) > 1:
        # avro's merge() adds the root "/" of compatible siblings; a real root-level
        # problem is always the only location.
        locations = [loc for loc in locations if loc != "/"]
    kinds = sorted({k.value for k in result.incompatibilities})
    problems = [
        problem
        for location in locations
        for problem in _explain(
            reader,
            writer,
            location,
            reader_label=reader_label,
            writer_label=writer_label,
            kinds=kinds,
            base_location=base_location,
        )
    ]
    if not problems:  # never expected; keep the checker's own words rather than say nothing
        problems = [
            Incompatibility(
                reader=reader_label,
                writer=writer_label,
                location=base_location or "/",
                kind=",".join(kinds),
                message=f"{reader_label} cannot read {writer_label}: " + "; ".join(sorted(result.messages)),
            )
        ]
    return problems


def _location_sort_key(location: str) -> list[Any]:
    return [(0, int(t)) if t.isdigit() else (1, t) for t in location.strip("/").split("/") if t]


class _LocatingChecker(ReaderWriterCompatibilityChecker):
    """avro's checker, with locations kept inside unions.

    Upstream recurses into union branches without passing the location, so a problem
    inside ``["null", "double"]`` is reported at "/". The rules are untouched: this only
    supplies the location the recursive call leaves out (the branch index).
    """

    def __init__(self) -> None:
        super().__init__()
        self._frames: list[tuple[Any, Any, list[str]]] = []

    def get_compatibility(  # type: ignore[override]
        self,
        reader: Any,
        writer: Any,
        reference_token: str = ReaderWriterCompatibilityChecker.ROOT_REFERENCE_TOKEN,
        location: list[str] | None = None,
    ) -> Any:
        if location is None and self._frames:
            parent_reader, parent_writer, location = self._frames[-1]
            reference_token = _branch_token(parent_writer, writer) or _branch_token(parent_reader, reader) or "/"
        return super().get_compatibility(reader, writer, reference_token, location)

    def calculate_compatibility(self, reader: Any, writer: Any, location: list[str]) -> Any:
        self._frames.append((reader, writer, location))
        try:
            return super().calculate_compatibility(reader, writer, location)
        finally:
            self._frames.pop()


def _branch_token(union: Any, branch: Any) -> str | None:
    if isinstance(union, UnionSchema):
        for i, candidate in enumerate(union.schemas):
            if candidate is branch:
                return str(i)
    return None


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


def _renamed_from(reader: Any, writer: Any, index: int) -> str | None:
    """A writer field no reader field reads, at the same position: the likely old name."""
    if not isinstance(reader, RecordSchema) or not isinstance(writer, RecordSchema):
        return None
    read = {f.name for f in writer.fields if any(lookup_writer_field(writer, rf) is f for rf in reader.fields)}
    unread = [f for f in writer.fields if f.name not in read]
    if not unread:
        return None
    same_place = [f for f in unread if writer.fields.index(f) == index]
    same_type = [f for f in unread if _type_name(f.type) == _type_name(reader.fields[index].type)]
    chosen = (same_place or same_type or [None])[0]
    return chosen.name if chosen is not None else None


def _same_kind(reader_branch: Any, writer: Any) -> bool:
    """The union branch meant to hold the writer's type: same name, or same unnamed type."""
    if isinstance(writer, NamedSchema) and isinstance(reader_branch, NamedSchema):
        aliases = reader_branch.props.get("aliases") or []
        return reader_branch.fullname == writer.fullname or writer.fullname in aliases
    return not isinstance(writer, NamedSchema) and reader_branch.type == writer.type


def _explain(
    reader: Any,
    writer: Any,
    location: str,
    *,
    reader_label: str,
    writer_label: str,
    kinds: list[str],
    base_location: str = "",
) -> list[Incompatibility]:
    """Walk ``location`` down both schemas and say what is wrong there and how to fix it.

    ``base_location`` is where ``reader`` itself sits when it is part of a larger schema.
    """
    walked = location
    location = (base_location + ("" if location == "/" else location)) or "/"

    tokens = [t for t in walked.strip("/").split("/") if t]
    r: Any = reader
    w: Any = writer
    what = "the schema"
    reader_field: Any = None
    writer_field: Any = None
    i = 0

    def made(kind: str, message: str) -> list[Incompatibility]:
        return [Incompatibility(reader=reader_label, writer=writer_label, location=location, kind=kind, message=message)]

    while i < len(tokens):
        token = tokens[i]
        if token == "fields" and i + 1 < len(tokens) and isinstance(r, RecordSchema):
            reader_field = r.fields[int(tokens[i + 1])]
            writer_field = lookup_writer_field(w, reader_field) if isinstance(w, RecordSchema) else None
            what = f"field '{reader_field.name}'"
            i += 2
            if i == len(tokens):
                renamed = _renamed_from(r, w, int(tokens[i - 1]))
                rename_hint = (
                    f"if it renames '{renamed}', keep the name '{renamed}' or add \"aliases\": [\"{renamed}\"]"
                    if renamed
                    else "if it is a rename, keep the old name or list it in \"aliases\""
                )
                return made(
                    "reader_field_missing_default_value",
                    f"{what} at {location} has no default: readers using {reader_label} cannot read "
                    f"{writer_label} records that lack it; add a default (e.g. type [\"null\", ...] with "
                    f"\"default\": null), or {rename_hint}",
                )
            continue
        if token == "type" and reader_field is not None:
            r = reader_field.type
            w = writer_field.type if writer_field is not None else None
        elif token == "items" and isinstance(r, ArraySchema):
            r, w = r.items, (w.items if isinstance(w, ArraySchema) else None)
        elif token == "values" and isinstance(r, MapSchema):
            r, w = r.values, (w.values if isinstance(w, MapSchema) else None)
        elif token.isdigit() and isinstance(w, UnionSchema) and int(token) < len(w.schemas):
            w = w.schemas[int(token)]
        elif token.isdigit() and isinstance(r, UnionSchema) and int(token) < len(r.schemas):
            r = r.schemas[int(token)]
        elif token == "name" and isinstance(r, NamedSchema) and i == len(tokens) - 1:
            wname = w.fullname if isinstance(w, NamedSchema) else _type_name(w)
            return made(
                "name_mismatch",
                f"{what} at {location}: {reader_label} names the type '{r.fullname}' but {writer_label} "
                f"wrote '{wname}'; keep the name or add \"aliases\": [\"{wname}\"] to the type",
            )
        elif token == "size" and isinstance(r, FixedSchema) and isinstance(w, FixedSchema):
            return made(
                "fixed_size_mismatch",
                f"{what} at {location}: fixed '{r.fullname}' has size {r.size} in {reader_label} but "
                f"{w.size} in {writer_label}; a fixed size cannot change, add a new field instead",
            )
        elif token == "symbols" and isinstance(r, EnumSchema) and isinstance(w, EnumSchema):
            missing = sorted(set(w.symbols) - set(r.symbols))
            return made(
                "missing_enum_symbols",
                f"{what} at {location}: {writer_label} can write symbols {missing} that enum "
                f"'{r.fullname}' in {reader_label} lacks; keep them or give the enum a \"default\" symbol",
            )
        else:
            break
        i += 1

    if w is None:
        return made(
            ",".join(kinds),
            f"{what} at {location}: {reader_label} cannot read {writer_label} here "
            f"({', '.join(kinds)}); keep the earlier definition or add a default",
        )
    if isinstance(r, UnionSchema) and not isinstance(w, UnionSchema):
        # avro stops at "no branch matches"; when the union has the writer's own type
        # (same name), the real problem is inside it: ask the checker about that pair.
        same = [b for b in r.schemas if _same_kind(b, w)]
        if same:
            inner = compatibility_problems(
                same[0], w, reader_label=reader_label, writer_label=writer_label, base_location=location
            )
            if inner:
                return inner
        return made(
            "missing_union_branch",
            f"{what} at {location}: the union {_type_name(r)} in {reader_label} has no branch that can "
            f"read {_type_name(w)} written by {writer_label}; add \"{_type_name(w)}\" to the union",
        )
    return made(
        "type_mismatch",
        f"{what} at {location}: {reader_label} reads it as {_type_name(r)} but {writer_label} wrote "
        f"{_type_name(w)}, which Avro cannot convert; keep {_type_name(w)}, only widen "
        f"(int->long->float->double, string<->bytes), or add a new field instead",
    )


# --------------------------------------------------------------------------- the registry


class Registry:
    """A schema registry folder: read versions by subject or id, check and register new ones.

    Cheap to construct; the index is re-read when the file changes on disk, so a
    long-running decoder sees versions registered after it started.
    """

    def __init__(self, path: Path | str) -> None:
        self._path = Path(path)
        self._index_cache: tuple[tuple[int, int, int], _Index] | None = None
        self._versions: dict[tuple[int, str], SchemaVersion] = {}

    @property
    def path(self) -> Path:
        return self._path

    @property
    def index_path(self) -> Path:
        return self._path / INDEX_FILE

    def __repr__(self) -> str:
        return f"Registry({str(self._path)!r})"

    # ---- reading

    def subjects(self) -> list[str]:
        """Subjects with at least one registered version, sorted."""
        return sorted(self._index().by_subject)

    def versions(self, subject: str) -> list[int]:
        """Registered version numbers of ``subject``, ascending."""
        return [e.version for e in self._entries(subject)]

    def latest(self, subject: str) -> SchemaVersion:
        """The newest version: the reader schema for the subject's table."""
        return self._load(self._entries(subject)[-1])

    def get(self, subject: str, version: int) -> SchemaVersion:
        """One version by number."""
        for entry in self._entries(subject):
            if entry.version == version:
                return self._load(entry)
        raise SchemaNotFoundError(
            f"{subject} has no version {version}; it has {', '.join(f'v{v}' for v in self.versions(subject))}"
        )

    def by_id(self, schema_id: int) -> SchemaVersion:
        """The version a wire-format schema id stands for."""
        entry = self._index().by_id.get(schema_id)
        if entry is None:
            raise SchemaNotFoundError(
                f"schema id {schema_id} is not registered in {self.index_path}; "
                "was it registered elsewhere? pull the schemas folder and retry"
            )
        return self._load(entry)

    def all_versions(self) -> list[SchemaVersion]:
        """Every registered version, ordered by schema id."""
        return [self._load(e) for e in sorted(self._index().entries, key=lambda e: e.schema_id)]

    def compatibility(self, subject: str) -> Compatibility:
        """The subject's mode from ``subject.yaml`` (BACKWARD when unset, like Confluent)."""
        _check_subject_name(subject)
        meta_path = self._subject_dir(subject) / SUBJECT_FILE
        if not meta_path.exists():
            return DEFAULT_COMPATIBILITY
        try:
            meta = yaml.safe_load(meta_path.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as exc:
            raise SchemaError(f"{meta_path}: not valid YAML: {_one_line(exc)}") from None
        if not isinstance(meta, dict):
            raise SchemaError(f"{meta_path}: expected a mapping like 'compatibility: BACKWARD'")
        return Compatibility.parse(meta.get("compatibility", DEFAULT_COMPATIBILITY.value), where=str(meta_path))

    # ---- checking and writing

    def check(self, subject: str, schema_text: str, *, source: str | None = None,
              mode: Compatibility | None = None) -> CompatibilityReport:
        """May ``schema_text`` become the next version of ``subject``? Writes nothing.

        Raises SchemaError when the text is not a valid schema; returns a report (maybe
        incompatible) otherwise.
        """
        _check_subject_name(subject)
        candidate = validate_schema_text(schema_text, source=source or f"new {subject} schema")
        return self._report(subject, candidate, self._index(), mode=mode)

    def register(self, subject: str, schema_text: str, *, source: str | None = None,
                 mode: Compatibility | None = None) -> SchemaVersion:
        """Add ``schema_text`` as the next version of ``subject`` and give it a new schema id.

        Idempotent: a schema equal to a registered version (same canonical form, defaults
        and aliases) returns that version. Refused schemas raise and leave the folder
        byte-identical. The .avsc is written before the index, each atomically, so a crash
        leaves at most an unlisted file that readers ignore.
        """
        _check_subject_name(subject)
        candidate = validate_schema_text(schema_text, source=source or f"new {subject} schema")
        with self._lock():
            index = self._index()
            report = self._report(subject, candidate, index, mode=mode)
            if report.existing is not None:
                return report.existing
            if not report.compatible:
                raise IncompatibleSchemaError(report)
            entry = _IndexEntry(
                schema_id=index.next_id,
                subject=subject,
                version=report.version,
                fingerprint=candidate.fingerprint,
                file_sha256=_sha256(candidate.stored_text.encode("utf-8")),
            )
            subject_dir = self._subject_dir(subject)
            subject_dir.mkdir(parents=True, exist_ok=True)
            meta_path = subject_dir / SUBJECT_FILE
            if not meta_path.exists():
                _atomic_write(meta_path, _subject_yaml(DEFAULT_COMPATIBILITY))
            _atomic_write(subject_dir / f"v{entry.version}.avsc", candidate.stored_text.encode("utf-8"))
            self._write_index([*index.entries, entry])
            return self._load(entry)

    def set_compatibility(self, subject: str, mode: Compatibility | str) -> Compatibility:
        """Change the subject's mode; takes effect for the next registration."""
        _check_subject_name(subject)
        parsed = mode if isinstance(mode, Compatibility) else Compatibility.parse(mode, where=subject)
        with self._lock():
            subject_dir = self._subject_dir(subject)
            subject_dir.mkdir(parents=True, exist_ok=True)
            _atomic_write(subject_dir / SUBJECT_FILE, _subject_yaml(parsed))
        return parsed

    def check_all(self) -> list[str]:
        """Every problem in the folder, one actionable line each (empty list: all good).

        Checks that the index parses, ids and versions are unique and contiguous, every
        listed file exists, is unchanged since registration and is a valid schema, and
        every version is compatible with its predecessors under the subject's mode.
        """
        problems: list[str] = []
        try:
            index = self._index()
        except SchemaError as exc:
            return [str(exc)]

        seen_ids: dict[int, _IndexEntry] = {}
        for entry in index.entries:
            if entry.schema_id in seen_ids:
                other = seen_ids[entry.schema_id]
                problems.append(
                    f"{self.index_path}: schema id {entry.schema_id} is used by both {other.subject} "
                    f"v{other.version} and {entry.subject} v{entry.version}; ids must be unique "
                    "(a merge conflict?): keep the id that was published first, re-register the other"
                )
            seen_ids.setdefault(entry.schema_id, entry)

        for subject, entries in sorted(index.by_subject.items()):
            numbers = [e.version for e in entries]
            if numbers != list(range(1, len(numbers) + 1)):
                problems.append(
                    f"{self.index_path}: {subject} has versions {numbers}; expected 1..{len(numbers)} "
                    "with no gaps or duplicates"
                )
            try:
                mode = self.compatibility(subject)
            except SchemaError as exc:
                problems.append(str(exc))
                mode = DEFAULT_COMPATIBILITY
            loaded: list[SchemaVersion] = []
            for entry in entries:
                try:
                    loaded.append(self._load(entry, verify=True))
                except SchemaError as exc:
                    problems.append(str(exc))
            for k, current in enumerate(loaded):
                earlier = loaded[:k]
                if not earlier or mode is Compatibility.NONE:
                    continue
                against = earlier if mode.transitive else earlier[-1:]
                for previous in against:
                    for item in _pair_problems(
                        mode,
                        new=current.avro_schema,
                        old=previous.avro_schema,
                        new_label=f"v{current.version}",
                        old_label=f"v{previous.version}",
                    ):
                        problems.append(f"{subject} v{current.version} vs v{previous.version} ({mode.value}): {item}")
            problems.extend(self._orphans(subject, entries))

        if self._path.is_dir():
            for child in sorted(self._path.iterdir()):
                if child.is_dir() and child.name not in index.by_subject and any(child.glob("v*.avsc")):
                    problems.extend(self._orphans(child.name, []))
        return problems

    def diff(self, subject: str, v1: int, v2: int) -> list[str]:
        """What changed from version ``v1`` to ``v2``, one line per change, for reviews."""
        old = json.loads(self.get(subject, v1).schema_json)
        new = json.loads(self.get(subject, v2).schema_json)
        lines: list[str] = []
        _diff_nodes(old, new, "", lines)
        return lines

    # ---- internals

    def _report(self, subject: str, candidate: ValidatedSchema, index: _Index,
                mode: Compatibility | None = None) -> CompatibilityReport:
        """``mode`` overrides the subject's mode for this one check (the migration DAG's param)."""
        entries = index.by_subject.get(subject, [])
        mode = mode or self.compatibility(subject)
        for entry in entries:
            existing = self._load(entry)
            if _identity_of(existing) == candidate.identity:
                return CompatibilityReport(
                    subject=subject,
                    mode=mode,
                    version=existing.version,
                    checked_against=(),
                    existing=existing,
                )
        next_version = (entries[-1].version + 1) if entries else 1
        if not entries or mode is Compatibility.NONE:
            return CompatibilityReport(subject=subject, mode=mode, version=next_version, checked_against=())
        against = entries if mode.transitive else entries[-1:]
        problems: list[Incompatibility] = []
        for entry in against:
            previous = self._load(entry)
            problems.extend(
                _pair_problems(
                    mode,
                    new=candidate.schema,
                    old=previous.avro_schema,
                    new_label=f"v{next_version} (new)",
                    old_label=f"v{previous.version}",
                )
            )
        return CompatibilityReport(
            subject=subject,
            mode=mode,
            version=next_version,
            checked_against=tuple(e.version for e in against),
            incompatibilities=tuple(problems),
        )

    def _index(self) -> _Index:
        path = self.index_path
        try:
            st = path.stat()
        except FileNotFoundError:
            self._index_cache = None
            return _Index()
        key = (st.st_mtime_ns, st.st_size, st.st_ino)
        if self._index_cache is not None and self._index_cache[0] == key:
            return self._index_cache[1]
        index = _Index.build(_parse_index(path.read_bytes(), where=str(path)))
        self._index_cache = (key, index)
        return index

    def _entries(self, subject: str) -> list[_IndexEntry]:
        entries = self._index().by_subject.get(subject)
        if not entries:
            known = ", ".join(self.subjects()) or "none yet"
            raise SchemaNotFoundError(f"no subject {subject!r} in {self._path} (subjects: {known})")
        return entries

    def _subject_dir(self, subject: str) -> Path:
        return self._path / subject

    def _load(self, entry: _IndexEntry, *, verify: bool = False) -> SchemaVersion:
        key = (entry.schema_id, entry.file_sha256)
        cached = self._versions.get(key)
        if cached is not None and not verify:
            return cached
        path = self._subject_dir(entry.subject) / f"v{entry.version}.avsc"
        where = f"{entry.subject} v{entry.version} (schema id {entry.schema_id})"
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            raise SchemaError(f"{where}: {path} is missing; restore it from git (the index lists it)") from None
        if _sha256(raw) != entry.file_sha256:
            raise SchemaError(
                f"{where}: {path} changed after registration; registered versions are immutable, "
                "restore it from git and register the change as a new version"
            )
        if verify or cached is None:
            candidate = validate_schema_text(raw.decode("utf-8", errors="replace"), source=str(path))
            if candidate.fingerprint != entry.fingerprint:
                raise SchemaError(f"{where}: fingerprint differs from {INDEX_FILE}; restore {path} from git")
        version = SchemaVersion(
            subject=entry.subject,
            version=entry.version,
            schema_id=entry.schema_id,
            schema_json=raw.decode("utf-8"),
            fingerprint=entry.fingerprint,
        )
        self._versions[key] = version
        return version

    def _write_index(self, entries: list[_IndexEntry]) -> None:
        document = {
            "format": INDEX_FORMAT,
            "note": "schema ids are global and permanent: never edit, reuse or remove an entry",
            "schemas": [e.to_json() for e in sorted(entries, key=lambda e: e.schema_id)],
        }
        _atomic_write(self.index_path, (json.dumps(document, indent=2) + "\n").encode("utf-8"))

    @contextlib.contextmanager
    def _lock(self) -> Iterator[None]:
        """Serialize writers with flock on the folder itself (no lock file left on disk)."""
        self._path.mkdir(parents=True, exist_ok=True)
        fd = os.open(self._path, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def _orphans(self, subject: str, entries: list[_IndexEntry]) -> list[str]:
        listed = {e.version for e in entries}
        subject_dir = self._subject_dir(subject)
        if not subject_dir.is_dir():
            return []
        problems = []
        for child in sorted(subject_dir.iterdir()):
            match = _VERSION_FILE_RE.match(child.name)
            if match and int(match.group(1)) not in listed:
                problems.append(
                    f"{child} is not in {INDEX_FILE}, so nothing reads it; register it with "
                    f"`kafkalake schema register {subject} FILE` or delete it"
                )
        return problems


def _pair_problems(mode: Compatibility, *, new: Any, old: Any, new_label: str, old_label: str) -> list[Incompatibility]:
    problems: list[Incompatibility] = []
    if mode.backward:
        problems.extend(compatibility_problems(new, old, reader_label=new_label, writer_label=old_label))
    if mode.forward:
        problems.extend(compatibility_problems(old, new, reader_label=old_label, writer_label=new_label))
    return problems


def _identity_of(version: SchemaVersion) -> str:
    extras = json.dumps(list(_resolution_extras(version.parsed, "")), sort_keys=True)
    return version.canonical_form + "\n" + extras


def _check_subject_name(subject: str) -> None:
    if not _SUBJECT_RE.match(subject):
        raise SchemaError(
            f"subject name {subject!r} is not allowed; use letters, digits, '.', '_' and '-' "
            "(starting with a letter or digit)"
        )


def _parse_index(raw: bytes, *, where: str) -> list[_IndexEntry]:
    try:
        document = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise SchemaError(f"{where}: not valid JSON ({_one_line(exc)}); restore it from git") from None
    rows = document.get("schemas") if isinstance(document, dict) else None
    if not isinstance(rows, list):
        raise SchemaError(f"{where}: expected an object with a 'schemas' list; restore it from git")
    entries = []
    for n, row in enumerate(rows):
        try:
            entry = _IndexEntry(
                schema_id=row["id"],
                subject=row["subject"],
                version=row["version"],
                fingerprint=row["fingerprint"],
                file_sha256=row["file_sha256"],
            )
        except (KeyError, TypeError):
            raise SchemaError(
                f"{where}: entry {n} lacks id/subject/version/fingerprint/file_sha256; restore it from git"
            ) from None
        if (
            not isinstance(entry.schema_id, int)
            or isinstance(entry.schema_id, bool)
            or not 1 <= entry.schema_id <= 2**31 - 1
            or not isinstance(entry.version, int)
            or entry.version < 1
            or not isinstance(entry.subject, str)
            or not _SUBJECT_RE.match(entry.subject)
        ):
            raise SchemaError(
                f"{where}: entry {n} has an invalid id, version or subject; restore it from git"
            )
        entries.append(entry)
    return entries


def _subject_yaml(mode: Compatibility) -> bytes:
    return (
        "# Compatibility mode checked when a new version is registered (Confluent semantics).\n"
        f"compatibility: {mode.value}\n"
    ).encode("utf-8")


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _atomic_write(path: Path, data: bytes) -> None:
    """Write via a temp file in the same folder + fsync + os.replace: all or nothing."""
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp_name, 0o644)
        os.replace(tmp_name, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


# --------------------------------------------------------------------------- diff


def _diff_nodes(old: Any, new: Any, path: str, lines: list[str]) -> None:
    """Record-aware diff: fields matched by name (or alias), types compared as JSON."""
    if isinstance(old, dict) and isinstance(new, dict) and old.get("type") == new.get("type") == "record":
        where = path or "/"
        old_name = _full_name(old)
        new_name = _full_name(new)
        if old_name != new_name:
            lines.append(f"~ {where}: record renamed {old_name} -> {new_name}")
        old_fields = {f["name"]: (i, f) for i, f in enumerate(old.get("fields", []))}
        matched: set[str] = set()
        for i, new_field in enumerate(new.get("fields", [])):
            field_path = f"{path}/fields/{i}"
            name = new_field["name"]
            source = old_fields.get(name)
            if source is None:
                for alias in new_field.get("aliases", []) or []:
                    if alias in old_fields:
                        source = old_fields[alias]
                        lines.append(f"~ {field_path}: field '{alias}' renamed to '{name}' (alias)")
                        break
            if source is None:
                default = f" default {json.dumps(new_field['default'])}" if "default" in new_field else " (no default)"
                lines.append(f"+ {field_path}: field '{name}' {json.dumps(new_field['type'])}{default}")
                continue
            old_index, old_field = source
            matched.add(old_field["name"])
            if old_index != i:
                lines.append(f"~ {field_path}: field '{name}' moved from /fields/{old_index}")
            _diff_field(old_field, new_field, field_path, lines)
        for name, (i, old_field) in old_fields.items():
            if name not in matched:
                lines.append(f"- {path}/fields/{i}: field '{name}' {json.dumps(old_field['type'])} removed")
        return
    if json.dumps(old, sort_keys=True) != json.dumps(new, sort_keys=True):
        lines.append(f"~ {path or '/'}: type {json.dumps(old)} -> {json.dumps(new)}")


def _diff_field(old: dict[str, Any], new: dict[str, Any], path: str, lines: list[str]) -> None:
    name = new["name"]
    if "default" in old or "default" in new:
        before = json.dumps(old["default"]) if "default" in old else "(none)"
        after = json.dumps(new["default"]) if "default" in new else "(none)"
        if before != after:
            lines.append(f"~ {path}: field '{name}' default {before} -> {after}")
    if old.get("doc") != new.get("doc"):
        lines.append(f"~ {path}: field '{name}' doc changed")
    _diff_nodes(old["type"], new["type"], f"{path}/type", lines)


def _full_name(record: dict[str, Any]) -> str:
    name = record.get("name", "")
    namespace = record.get("namespace")
    return name if "." in name or not namespace else f"{namespace}.{name}"
