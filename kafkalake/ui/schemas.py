"""The Schemas view's data: the registry's subjects, versions, diffs, and who reads with what.

docs/operator-views.md: Schemas. Reading only: :meth:`Registry.check` answers "may this become
the next version?" and writes nothing; registering stays with the ``schema_migration`` DAG
run through Airflow's REST API by the page, as the signed-in user, with :func:`migration_conf`.
(Airflow 3.3's trigger form takes no values from its URL, so the page cannot open it filled in.)
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from kafkalake.config import Settings
from kafkalake.schema.model import SchemaError
from kafkalake.schema.registry import Registry

MIGRATION_DAG = "schema_migration"


@dataclass
class SubjectView:
    subject: str
    mode: str
    versions: list[dict[str, Any]]
    #: stream -> the reader version its running driver decodes with (None: not running / unknown)
    readers: dict[str, int | None] = field(default_factory=dict)
    error: str | None = None


def subject_views(settings: Settings, *, reader_versions: Mapping[str, tuple[str, int | None]]) -> list[SubjectView]:
    """Every subject: mode, versions (id, fingerprint) and which streams read it with which version.

    ``reader_versions``: stream -> (subject, the reader version in its status file).
    """
    registry = Registry(settings.schemas_dir)
    views = []
    for subject in registry.subjects():
        try:
            mode = registry.compatibility(subject).value
        except SchemaError as exc:
            mode, error = "?", str(exc)
        else:
            error = None
        versions = []
        for number in registry.versions(subject):
            try:
                version = registry.get(subject, number)
            except SchemaError as exc:
                error = str(exc)
                continue
            fields = [f.get("name") for f in json.loads(version.schema_json).get("fields", [])]
            versions.append({"version": version.version, "schema_id": version.schema_id,
                             "fingerprint": version.fingerprint, "fields": fields, "schema": version.schema_json})
        readers = {stream: version for stream, (subj, version) in sorted(reader_versions.items()) if subj == subject}
        views.append(SubjectView(subject, mode, versions, readers, error))
    return views


def diff(settings: Settings, subject: str, v1: int, v2: int) -> list[str]:
    """What changed from ``v1`` to ``v2`` (Registry.diff); raises SchemaError for unknown versions."""
    return Registry(settings.schemas_dir).diff(subject, v1, v2)


def check(settings: Settings, subject: str, schema_text: str) -> dict[str, Any]:
    """Would ``schema_text`` be accepted as the next version of ``subject``? Changes nothing."""
    registry = Registry(settings.schemas_dir)
    try:
        report = registry.check(subject, schema_text, source=f"candidate {subject} schema")
    except SchemaError as exc:
        return {"subject": subject, "valid": False, "compatible": False, "lines": str(exc).splitlines()}
    return {
        "subject": subject, "valid": True, "compatible": report.compatible, "mode": report.mode.value,
        "version": report.version, "existing": None if report.existing is None else report.existing.version,
        "lines": report.lines(),
    }


def migration_conf(subject: str, schema_text: str) -> dict[str, Any]:
    """The ``schema_migration`` DAG's params for registering ``schema_text`` (its form checks them)."""
    return {"subject": subject, "schema": schema_text, "roll_streams": True, "dry_run": True}
