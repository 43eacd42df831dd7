"""The schema registry: a folder in git that is the single source of truth for Avro schemas."""

from __future__ import annotations

from typing import TYPE_CHECKING

from kafkalake._exports import lazy_exports

if TYPE_CHECKING:
    from kafkalake.schema.compatibility import compatibility_problems
    from kafkalake.schema.model import (
        DEFAULT_COMPATIBILITY,
        Compatibility,
        CompatibilityReport,
        Incompatibility,
        IncompatibleSchemaError,
        SchemaError,
        SchemaNotFoundError,
        SchemaVersion,
        ValidatedSchema,
    )
    from kafkalake.schema.registry import Registry
    from kafkalake.schema.validation import default_problems, pretty_schema_json, validate_schema_text

_EXPORTS = {
    "Compatibility": "model",
    "CompatibilityReport": "model",
    "DEFAULT_COMPATIBILITY": "model",
    "Incompatibility": "model",
    "IncompatibleSchemaError": "model",
    "SchemaError": "model",
    "SchemaNotFoundError": "model",
    "SchemaVersion": "model",
    "ValidatedSchema": "model",
    "Registry": "registry",
    "default_problems": "validation",
    "pretty_schema_json": "validation",
    "validate_schema_text": "validation",
    "compatibility_problems": "compatibility",
}
__all__ = [
    "Compatibility",
    "CompatibilityReport",
    "DEFAULT_COMPATIBILITY",
    "Incompatibility",
    "IncompatibleSchemaError",
    "Registry",
    "SchemaError",
    "SchemaNotFoundError",
    "SchemaVersion",
    "ValidatedSchema",
    "compatibility_problems",
    "default_problems",
    "pretty_schema_json",
    "validate_schema_text",
]
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
