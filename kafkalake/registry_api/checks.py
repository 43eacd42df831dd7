"""Validity and compatibility answers for the API, from the registry's own gates.

The same validator and ``ReaderWriterCompatibilityChecker`` sentences as ``kafkalake schema
check``: a client's ``verbose=true`` gets the messages a reviewer would read in CI.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from kafkalake.registry_api import errors
from kafkalake.schema.compatibility import compatibility_problems
from kafkalake.schema.model import Compatibility, SchemaError, ValidatedSchema
from kafkalake.schema.validation import validate_schema_text

if TYPE_CHECKING:
    from kafkalake.schema.model import SchemaVersion
    from kafkalake.schema.registry import Registry

NEW_LABEL = "the new schema"


def validated(subject: str, text: str) -> ValidatedSchema:
    """The schema through the validity gates, or 42201 with the validator's one-line reason."""
    try:
        return validate_schema_text(text, source=f"{subject} schema")
    except SchemaError as exc:
        raise errors.invalid_schema(str(exc)) from None


def compatibility_messages(
    registry: Registry, subject: str, text: str, against: list[SchemaVersion] | None
) -> list[str]:
    """Why ``text`` may not follow ``against`` under the subject's mode (empty: compatible).

    ``against=None`` checks what registering would: the latest version, or every version
    for a transitive mode (:meth:`Registry.check`).
    """
    candidate = validated(subject, text)
    if against is None:
        report = registry.check(subject, text, source=f"{subject} schema")
        return [str(item) for item in report.incompatibilities]
    mode = registry.compatibility(subject)
    if mode is Compatibility.NONE:
        return []
    messages: list[str] = []
    for old in against:
        old_label = f"v{old.version}"
        if mode.backward:
            problems = compatibility_problems(candidate.schema, old.avro_schema, reader_label=NEW_LABEL,
                                              writer_label=old_label)
            messages += [str(p) for p in problems]
        if mode.forward:
            problems = compatibility_problems(old.avro_schema, candidate.schema, reader_label=old_label,
                                              writer_label=NEW_LABEL)
            messages += [str(p) for p in problems]
    return messages
