"""The FastAPI app: Confluent Schema Registry's REST API over a registry folder.

Every request reads the folder through one :class:`~kafkalake.schema.registry.Registry`,
whose index cache is keyed on ``_registry.json``'s mtime, size and inode: a version merged
in git (files written by another process) is served by the next request, without a restart.

Writes are off by default: schemas enter the registry through git and the
``schema_migration`` DAG, and the API reports ``READONLY``. With ``allow_register`` a
``POST /subjects/{s}/versions`` registers through :meth:`Registry.register`, the gates of
``kafkalake schema register``.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from kafkalake.registry_api import errors
from kafkalake.registry_api.checks import compatibility_messages, validated
from kafkalake.registry_api.shapes import (
    CONTENT_TYPE,
    SchemaRegistryResponse,
    candidate_schema,
    compact,
    parse_schema_id,
    parse_version,
    schema_document,
    version_document,
)
from kafkalake.schema.model import (
    DEFAULT_COMPATIBILITY,
    SUBJECT_PATTERN,
    IncompatibleSchemaError,
    SchemaError,
    SchemaNotFoundError,
    SchemaVersion,
)
from kafkalake.schema.registry import SUBJECT_FILE, Registry

log = logging.getLogger(__name__)

_SUBJECT_RE = re.compile(SUBJECT_PATTERN)
_NAME_RULE = "use letters, digits, '.', '_' and '-', starting with a letter or digit"
READONLY = "READONLY"
READWRITE = "READWRITE"
_CHANGE_IN_GIT = (
    "this registry is a folder in git: change it with a reviewed commit (`kafkalake schema register`, "
    "`kafkalake schema compatibility`) rolled out by the schema_migration DAG"
)


def create_app(schemas_dir: Path | str, *, allow_register: bool = False) -> FastAPI:
    """The API over ``schemas_dir``; ``allow_register`` turns on ``POST /subjects/{s}/versions``."""
    registry = Registry(schemas_dir)
    app = FastAPI(
        title="kafkalake schema registry",
        summary="Confluent Schema Registry REST API over the git registry folder",
        default_response_class=SchemaRegistryResponse,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    app.state.registry = registry
    app.state.allow_register = allow_register
    _add_error_handlers(app)
    _add_read_routes(app, registry)
    _add_check_routes(app, registry)
    _add_write_routes(app, registry, allow_register=allow_register)
    return app


# ---- reading


def _add_read_routes(app: FastAPI, registry: Registry) -> None:
    @app.get("/")
    def root() -> dict[str, Any]:
        """Confluent answers ``{}`` here; load balancers and readiness checks probe it."""
        return {}

    @app.get("/subjects")
    def subjects(subject_prefix: str = Query("", alias="subjectPrefix")) -> list[str]:
        return [s for s in registry.subjects() if s.startswith(subject_prefix)]

    @app.get("/subjects/{subject}/versions")
    def versions(subject: str) -> list[int]:
        _require_subject(registry, subject)
        return registry.versions(subject)

    @app.get("/subjects/{subject}/versions/{version}")
    def version(subject: str, version: str) -> dict[str, Any]:
        return version_document(_chosen(registry, subject, version))

    @app.get("/subjects/{subject}/versions/{version}/schema")
    def version_schema(subject: str, version: str) -> Response:
        return _raw_schema(_chosen(registry, subject, version))

    @app.get("/subjects/{subject}/versions/{version}/referencedby")
    def referenced_by(subject: str, version: str) -> list[int]:
        """No schema references another here: references are not supported."""
        _chosen(registry, subject, version)
        return []

    @app.get("/schemas")
    def all_schemas(subject_prefix: str = Query("", alias="subjectPrefix")) -> list[dict[str, Any]]:
        return [version_document(v) for v in registry.all_versions() if v.subject.startswith(subject_prefix)]

    @app.get("/schemas/types")
    def schema_types() -> list[str]:
        return ["AVRO"]

    @app.get("/schemas/ids/{schema_id}")
    def by_id(schema_id: str) -> dict[str, Any]:
        return schema_document(_by_id(registry, schema_id))

    @app.get("/schemas/ids/{schema_id}/schema")
    def by_id_schema(schema_id: str) -> Response:
        return _raw_schema(_by_id(registry, schema_id))

    @app.get("/schemas/ids/{schema_id}/versions")
    def id_versions(schema_id: str) -> list[dict[str, Any]]:
        found = _by_id(registry, schema_id)
        return [{"subject": found.subject, "version": found.version}]

    @app.get("/schemas/ids/{schema_id}/subjects")
    def id_subjects(schema_id: str) -> list[str]:
        return [_by_id(registry, schema_id).subject]

    @app.get("/config")
    def global_config() -> dict[str, str]:
        """The mode of a subject without ``subject.yaml``, as :meth:`Registry.compatibility` applies it."""
        return {"compatibilityLevel": DEFAULT_COMPATIBILITY.value}

    @app.get("/config/{subject}")
    def subject_config(subject: str, default_to_global: bool = Query(False, alias="defaultToGlobal")) -> dict[str, str]:
        if not _valid_name(subject) or not (registry.path / subject / SUBJECT_FILE).is_file():
            if default_to_global:
                return {"compatibilityLevel": DEFAULT_COMPATIBILITY.value}
            raise errors.compatibility_not_configured(subject)
        return {"compatibilityLevel": registry.compatibility(subject).value}

    @app.get("/mode")
    def global_mode() -> dict[str, str]:
        return {"mode": _mode(app)}

    @app.get("/mode/{subject}")
    def subject_mode(subject: str) -> dict[str, str]:
        """One mode for the whole folder: each subject has the global one."""
        return {"mode": _mode(app)}


# ---- compatibility and lookup (write nothing)


async def _schema_text(request: Request) -> str:
    """The request's schema, read from the raw body; the route itself runs in the threadpool,
    so file reads and the registry's write lock never block the event loop."""
    return candidate_schema(await request.body())


SchemaText = Annotated[str, Depends(_schema_text)]


def _add_check_routes(app: FastAPI, registry: Registry) -> None:
    @app.post("/subjects/{subject}")
    def lookup(subject: str, text: SchemaText) -> dict[str, Any]:
        """Is this schema registered under ``subject``? Its version, id and schema if so."""
        validated(subject, text)
        _require_subject(registry, subject)
        existing = _existing(registry, subject, text)
        if existing is None:
            raise errors.schema_not_found()
        return version_document(existing)

    @app.post("/compatibility/subjects/{subject}/versions/{version}")
    def check_one(subject: str, version: str, text: SchemaText, verbose: bool = False) -> dict[str, Any]:
        """Against that one version, in the direction(s) of the subject's mode (as Confluent does)."""
        against = _chosen(registry, subject, version)
        return _compatibility_answer(compatibility_messages(registry, subject, text, [against]), verbose=verbose)

    @app.post("/compatibility/subjects/{subject}/versions")
    def check_all(subject: str, text: SchemaText, verbose: bool = False) -> dict[str, Any]:
        """Against what registering would check: the latest version, or all for a transitive mode."""
        if not _valid_name(subject):
            raise errors.invalid_subject(subject, _NAME_RULE)
        return _compatibility_answer(compatibility_messages(registry, subject, text, None), verbose=verbose)


def _compatibility_answer(messages: list[str], *, verbose: bool) -> dict[str, Any]:
    answer: dict[str, Any] = {"is_compatible": not messages}
    if verbose:
        answer["messages"] = messages
    return answer


# ---- writing


def _add_write_routes(app: FastAPI, registry: Registry, *, allow_register: bool) -> None:
    @app.post("/subjects/{subject}/versions")
    def register(subject: str, text: SchemaText) -> dict[str, int]:
        """Register, or refuse in read-only mode; an identical schema gets its existing id either way."""
        if not _valid_name(subject):
            raise errors.invalid_subject(subject, _NAME_RULE)
        validated(subject, text)
        if not allow_register:
            existing = _existing(registry, subject, text) if subject in registry.subjects() else None
            if existing is not None:
                return {"id": existing.schema_id}
            raise errors.not_permitted(
                f"Subject '{subject}' is in read-only mode: {_CHANGE_IN_GIT} "
                "(or serve the API with KAFKALAKE_REGISTRY_ALLOW_REGISTER=true)"
            )
        try:
            registered = registry.register(subject, text, source=f"{subject} schema")
        except IncompatibleSchemaError as exc:
            raise errors.incompatible(subject, [str(item) for item in exc.report.incompatibilities]) from None
        log.info("registered %s with schema id %s", registered.label, registered.schema_id)
        return {"id": registered.schema_id}

    def refuse() -> None:
        raise errors.not_permitted(f"Operation not permitted: {_CHANGE_IN_GIT}")

    for path, method in (
        ("/config", "PUT"), ("/config/{subject}", "PUT"), ("/config/{subject}", "DELETE"),
        ("/mode", "PUT"), ("/mode/{subject}", "PUT"), ("/mode/{subject}", "DELETE"),
        ("/subjects/{subject}", "DELETE"), ("/subjects/{subject}/versions/{version}", "DELETE"),
    ):
        app.add_api_route(path, refuse, methods=[method], include_in_schema=False)


# ---- helpers


def _mode(app: FastAPI) -> str:
    return READWRITE if app.state.allow_register else READONLY


def _valid_name(subject: str) -> bool:
    return bool(_SUBJECT_RE.match(subject))


def _require_subject(registry: Registry, subject: str) -> None:
    if subject not in registry.subjects():
        raise errors.subject_not_found(subject)


def _chosen(registry: Registry, subject: str, version_text: str) -> SchemaVersion:
    version = parse_version(version_text)
    _require_subject(registry, subject)
    if version == "latest":
        return registry.latest(subject)
    if version not in registry.versions(subject):
        raise errors.version_not_found(version)
    return registry.get(subject, version)


def _by_id(registry: Registry, schema_id_text: str) -> SchemaVersion:
    schema_id = parse_schema_id(schema_id_text)
    try:
        return registry.by_id(schema_id)
    except SchemaNotFoundError:
        raise errors.schema_not_found(schema_id) from None


def _existing(registry: Registry, subject: str, text: str) -> SchemaVersion | None:
    """The version of ``subject`` equal to ``text`` (canonical form, defaults and aliases), if any."""
    return registry.check(subject, text, source=f"{subject} schema").existing


def _raw_schema(version: SchemaVersion) -> Response:
    return Response(content=compact(version.schema_json), media_type=CONTENT_TYPE)


def _add_error_handlers(app: FastAPI) -> None:
    """Every failure in Confluent's shape: clients read ``error_code``; nobody gets a trace."""

    @app.exception_handler(errors.RegistryApiError)
    async def api_error(_request: Request, exc: errors.RegistryApiError) -> SchemaRegistryResponse:
        return _error(exc)

    @app.exception_handler(SchemaError)
    async def folder_error(_request: Request, exc: SchemaError) -> SchemaRegistryResponse:
        log.error("registry folder unusable: %s", exc)
        return _error(errors.store_error(str(exc)))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_request: Request, exc: StarletteHTTPException) -> SchemaRegistryResponse:
        from http import HTTPStatus

        return _error(errors.http_error(exc.status_code, HTTPStatus(exc.status_code).phrase))

    @app.exception_handler(RequestValidationError)
    async def bad_request(_request: Request, exc: RequestValidationError) -> SchemaRegistryResponse:
        where = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
        return _error(errors.RegistryApiError(400, 400, f"Bad Request: {where}"))

    @app.exception_handler(Exception)
    async def unexpected(_request: Request, exc: Exception) -> SchemaRegistryResponse:
        log.exception("unexpected error in the registry API")
        return _error(errors.store_error(f"{type(exc).__name__}: {exc}"))


def _error(error: errors.RegistryApiError) -> SchemaRegistryResponse:
    return SchemaRegistryResponse(error.body(), status_code=error.status)
