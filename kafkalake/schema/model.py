"""The registry's vocabulary: errors, compatibility modes, versions and reports."""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import Enum
from functools import cached_property
from typing import TYPE_CHECKING, Any

from kafkalake.errors import ExitCode, KafkalakeError

if TYPE_CHECKING:
    import avro.schema

#: Subject names become folder names and appear in CLI arguments and DAG params; ``_``
#: prefixes are reserved for registry files such as ``_registry.json``.
SUBJECT_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$"


class SchemaError(KafkalakeError):
    """A schema or the registry folder is unusable; the message says where and what to fix."""

    exit_code = ExitCode.ERROR


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
        import avro.schema

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
class ValidatedSchema:
    """A schema text that passed every validity gate, ready to compare and store."""

    stored_text: str
    schema: avro.schema.Schema
    canonical_form: str
    fingerprint: str
    #: PCF plus what PCF drops but resolution uses (defaults, aliases, logical types)
    identity: str
