"""Confluent's JSON documents and request parsing: what its clients send and read back.

Shapes follow Confluent's REST API reference and what confluent-kafka's
``SchemaRegistryClient`` parses (``RegisteredSchema.from_dict``, ``SchemaVersion.from_dict``):
``schemaType`` is left out for Avro, the only type this registry holds, as Confluent does.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, Literal

from fastapi.responses import JSONResponse

from kafkalake.registry_api import errors

if TYPE_CHECKING:
    from kafkalake.schema.model import SchemaVersion

#: the media type Confluent's server answers with (and its clients send and accept first)
CONTENT_TYPE = "application/vnd.schemaregistry.v1+json"
MAX_VERSION = 2**31 - 1
Latest = Literal["latest"]


class SchemaRegistryResponse(JSONResponse):
    """JSON with Confluent's media type, so clients that check ``Content-Type`` accept it."""

    media_type = CONTENT_TYPE


def compact(schema_json: str) -> str:
    """The schema text on one line, as Confluent returns it (the folder keeps it pretty for git)."""
    return json.dumps(json.loads(schema_json), separators=(",", ":"), ensure_ascii=False)


def version_document(version: SchemaVersion) -> dict[str, Any]:
    """``GET /subjects/{s}/versions/{v}`` and the lookup answer."""
    return {
        "subject": version.subject,
        "version": version.version,
        "id": version.schema_id,
        "schema": compact(version.schema_json),
    }


def schema_document(version: SchemaVersion) -> dict[str, Any]:
    """``GET /schemas/ids/{id}``."""
    return {"schema": compact(version.schema_json)}


def parse_version(text: str) -> int | Latest:
    """A version path segment: 1..2^31-1, ``latest``, or ``-1`` (Confluent's alias for latest)."""
    if text.strip().lower() == "latest" or text.strip() == "-1":
        return "latest"
    try:
        number = int(text)
    except ValueError:
        raise errors.invalid_version(text) from None
    if not 1 <= number <= MAX_VERSION:
        raise errors.invalid_version(text)
    return number


def parse_schema_id(text: str) -> int:
    """A schema id path segment; anything that is no id is an id nobody registered."""
    try:
        return int(text)
    except ValueError:
        raise errors.schema_not_found(text) from None


def candidate_schema(body: bytes) -> str:
    """The ``schema`` string of a request body ``{"schema": "...", "schemaType": "AVRO", ...}``.

    Read from the raw body whatever the Content-Type (curl's ``--data`` sends a form type),
    and refused in Confluent's shape: anything but one Avro schema without references.
    """
    try:
        document = json.loads(body or b"null")
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise errors.RegistryApiError(400, 400, f"Bad Request: the body is not JSON ({exc.msg})") from None
    if not isinstance(document, dict) or not isinstance(document.get("schema"), str) or not document["schema"]:
        raise errors.invalid_schema('the body must be an object with a "schema" string: {"schema": "<avro json>"}')
    schema_type = document.get("schemaType") or "AVRO"
    if str(schema_type).upper() != "AVRO":
        raise errors.invalid_schema(f"schemaType {schema_type!r} is not supported; this registry holds Avro only")
    if document.get("references"):
        raise errors.invalid_schema("schema references are not supported; inline the referenced types")
    return document["schema"]
