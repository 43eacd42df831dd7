"""Compatibility between two schemas, checked with avro's ReaderWriterCompatibilityChecker.

Each incompatibility is explained as a sentence a person can act on.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import avro.schema
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

from kafkalake.schema.model import Compatibility, Incompatibility, SchemaVersion
from kafkalake.schema.validation import _resolution_extras, _type_name


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


@dataclass(frozen=True)
class _Spot:
    """Where an incompatibility is reported and between which schemas."""

    reader_label: str
    writer_label: str
    location: str
    kinds: list[str]

    def made(self, kind: str, message: str) -> list[Incompatibility]:
        return [
            Incompatibility(
                reader=self.reader_label, writer=self.writer_label, location=self.location, kind=kind, message=message
            )
        ]


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
    spot = _Spot(reader_label, writer_label, (base_location + ("" if location == "/" else location)) or "/", kinds)
    found = _walk(reader, writer, [t for t in location.strip("/").split("/") if t], spot)
    if isinstance(found, list):
        return found
    return _explain_types(*found, spot)


def _walk(r: Any, w: Any, tokens: list[str], spot: _Spot) -> list[Incompatibility] | tuple[Any, Any, str]:
    """Follow the checker's path; an explanation when the path ends on a named problem, else
    the (reader, writer, what) the path leads to."""
    location, reader_label, writer_label = spot.location, spot.reader_label, spot.writer_label
    what = "the schema"
    reader_field: Any = None
    writer_field: Any = None
    i = 0
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
                return spot.made(
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
            return spot.made(
                "name_mismatch",
                f"{what} at {location}: {reader_label} names the type '{r.fullname}' but {writer_label} "
                f"wrote '{wname}'; keep the name or add \"aliases\": [\"{wname}\"] to the type",
            )
        elif token == "size" and isinstance(r, FixedSchema) and isinstance(w, FixedSchema):
            return spot.made(
                "fixed_size_mismatch",
                f"{what} at {location}: fixed '{r.fullname}' has size {r.size} in {reader_label} but "
                f"{w.size} in {writer_label}; a fixed size cannot change, add a new field instead",
            )
        elif token == "symbols" and isinstance(r, EnumSchema) and isinstance(w, EnumSchema):
            missing = sorted(set(w.symbols) - set(r.symbols))
            return spot.made(
                "missing_enum_symbols",
                f"{what} at {location}: {writer_label} can write symbols {missing} that enum "
                f"'{r.fullname}' in {reader_label} lacks; keep them or give the enum a \"default\" symbol",
            )
        else:
            break
        i += 1
    return r, w, what


def _explain_types(r: Any, w: Any, what: str, spot: _Spot) -> list[Incompatibility]:
    """The path led to two types the reader cannot resolve: a missing writer, a union, a type change."""
    location, reader_label, writer_label = spot.location, spot.reader_label, spot.writer_label
    if w is None:
        return spot.made(
            ",".join(spot.kinds),
            f"{what} at {location}: {reader_label} cannot read {writer_label} here "
            f"({', '.join(spot.kinds)}); keep the earlier definition or add a default",
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
        return spot.made(
            "missing_union_branch",
            f"{what} at {location}: the union {_type_name(r)} in {reader_label} has no branch that can "
            f"read {_type_name(w)} written by {writer_label}; add \"{_type_name(w)}\" to the union",
        )
    return spot.made(
        "type_mismatch",
        f"{what} at {location}: {reader_label} reads it as {_type_name(r)} but {writer_label} wrote "
        f"{_type_name(w)}, which Avro cannot convert; keep {_type_name(w)}, only widen "
        f"(int->long->float->double, string<->bytes), or add a new field instead",
    )


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
