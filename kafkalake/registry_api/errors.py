"""Confluent Schema Registry's error documents: ``{"error_code": 40401, "message": "..."}``.

Clients branch on ``error_code`` (confluent-kafka raises ``SchemaRegistryError`` carrying it),
so the codes and the HTTP statuses are Confluent's own (its ``rest/exceptions/Errors.java``);
the messages start like Confluent's and go on with kafkalake's reason where it has one.
"""

from __future__ import annotations

SUBJECT_NOT_FOUND = 40401
VERSION_NOT_FOUND = 40402
SCHEMA_NOT_FOUND = 40403
SUBJECT_COMPATIBILITY_NOT_CONFIGURED = 40408
#: Confluent's incompatible-schema code is the HTTP status itself (newer servers also use 40901)
INCOMPATIBLE_SCHEMA = 409
INVALID_SCHEMA = 42201
INVALID_VERSION = 42202
OPERATION_NOT_PERMITTED = 42205
INVALID_SUBJECT = 42208
STORE_ERROR = 50001


class RegistryApiError(Exception):
    """An answer in Confluent's error shape; the app turns it into the response."""

    def __init__(self, status: int, error_code: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.error_code = error_code
        self.message = message

    def body(self) -> dict[str, object]:
        return {"error_code": self.error_code, "message": self.message}


def subject_not_found(subject: str) -> RegistryApiError:
    return RegistryApiError(404, SUBJECT_NOT_FOUND, f"Subject '{subject}' not found.")


def version_not_found(version: int | str) -> RegistryApiError:
    return RegistryApiError(404, VERSION_NOT_FOUND, f"Version {version} not found.")


def schema_not_found(schema_id: int | str | None = None) -> RegistryApiError:
    return RegistryApiError(
        404, SCHEMA_NOT_FOUND, "Schema not found" if schema_id is None else f"Schema {schema_id} not found"
    )


def compatibility_not_configured(subject: str) -> RegistryApiError:
    return RegistryApiError(
        404, SUBJECT_COMPATIBILITY_NOT_CONFIGURED,
        f"Subject '{subject}' does not have subject-level compatibility configured",
    )


def invalid_schema(reason: str) -> RegistryApiError:
    return RegistryApiError(422, INVALID_SCHEMA, f"Invalid schema: {reason}")


def invalid_version(version: str) -> RegistryApiError:
    return RegistryApiError(
        422, INVALID_VERSION,
        f"The specified version '{version}' is not a valid version id. "
        'Allowed values are between [1, 2^31-1] and the string "latest"',
    )


def invalid_subject(subject: str, reason: str) -> RegistryApiError:
    return RegistryApiError(422, INVALID_SUBJECT, f"The specified subject '{subject}' is not valid: {reason}")


def incompatible(subject: str, reasons: list[str]) -> RegistryApiError:
    details = "; ".join(reasons)
    return RegistryApiError(
        409, INCOMPATIBLE_SCHEMA,
        f'Schema being registered is incompatible with an earlier schema for subject "{subject}", '
        f"details: [{details}]",
    )


def not_permitted(message: str) -> RegistryApiError:
    return RegistryApiError(422, OPERATION_NOT_PERMITTED, message)


def store_error(reason: str) -> RegistryApiError:
    """The registry folder itself is unusable (an edited .avsc, a broken index): say so, no trace."""
    return RegistryApiError(500, STORE_ERROR, f"Error in the backend data store: {reason}")


def http_error(status: int, phrase: str) -> RegistryApiError:
    """Routing errors (unknown path, wrong method) the way Confluent's Jersey server words them."""
    return RegistryApiError(status, status, f"HTTP {status} {phrase}")
