"""Schema migration: roll a new schema version out under live traffic, losing nothing.

The notebook's scenario: fridges in homes cannot all be updated, so v1 devices keep sending while
the platform moves to a new version. The steps, each a task of ``dags/schema_migration.py``:

1. **validate** — the params: subject name, schema text (JSON, Avro, defaults), mode override;
2. **check** — compatibility under the subject's mode (or the override), every incompatibility
   with its location; and that the streams' Iceberg tables can follow the change
   (:func:`kafkalake.catalog.evolution.check_evolution`: new columns with defaults, int->long,
   float->double, decimal widening). A refused schema stops here: nothing changes
   (docs/architecture.md: Schema changes are checked before they exist);
3. **register** — atomic (the registry writes the ``.avsc``, then its index); idempotent;
4. **evolve** (Spark, :mod:`kafkalake.migration.evolve`) — every table of the subject's streams
   gets the new columns (v3 defaults, so files written before read them) and widened types, in
   one schema commit per table; missing tables are created. No data file is rewritten: old
   files read with the new schema. Streams still on the old reader keep writing meanwhile
   (Iceberg fills a column they do not write with its write default);
5. **roll streams** — every stream reading the subject is asked to stop at a batch boundary;
   its supervisor DAG (``@continuous``) starts it again, and the new driver decodes with the
   new latest version as reader (and finds its tables evolved already). Checkpoints stay valid:
   the Kafka offsets do not depend on the schema.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kafkalake.catalog.evolution import check_evolution
from kafkalake.config import Settings
from kafkalake.errors import ExitCode, KafkalakeError
from kafkalake.schema.model import Compatibility, SchemaError
from kafkalake.schema.registry import Registry
from kafkalake.schema.validation import validate_schema_text
from kafkalake.stream.config import StreamConfig, load_streams, stream_paths


class MigrationError(KafkalakeError):
    """The migration cannot go on; the message says which step and why."""

    exit_code = ExitCode.MIGRATION


@dataclass(frozen=True)
class MigrationRequest:
    subject: str
    schema_text: str
    mode: Compatibility | None
    roll_streams: bool
    dry_run: bool


def parse_request(params: dict[str, Any]) -> MigrationRequest:
    """DAG params -> a request; one-line errors for anything the form's schema let through."""
    subject = str(params.get("subject") or "").strip()
    if not subject:
        raise MigrationError("subject is required (e.g. fridge)")
    text = params.get("schema")
    if isinstance(text, dict):  # the form may hand over parsed JSON
        text = json.dumps(text)
    if not isinstance(text, str) or not text.strip():
        raise MigrationError("schema is required: paste the new schema's JSON text")
    raw_mode = params.get("compatibility")
    mode = Compatibility.parse(raw_mode, where="compatibility") if raw_mode else None
    return MigrationRequest(subject, text, mode, bool(params.get("roll_streams", True)),
                            bool(params.get("dry_run", False)))


def validate(settings: Settings, request: MigrationRequest) -> dict[str, Any]:
    """The subject name is legal and exists; the text is a valid schema. Writes nothing."""
    registry = Registry(settings.schemas_dir)
    try:
        registry.versions(request.subject)
        candidate = validate_schema_text(request.schema_text, source=f"new {request.subject} schema")
    except SchemaError as exc:
        raise MigrationError(str(exc)) from None
    document = json.loads(request.schema_text)
    if not isinstance(document, dict) or document.get("type") != "record":
        raise MigrationError(f"new {request.subject} schema: a table's schema must be a record")
    streams = [s.name for s in streams_of(settings, request.subject)]
    return {"subject": request.subject, "fingerprint": candidate.fingerprint, "streams": streams,
            "latest": registry.latest(request.subject).version}


def check(settings: Settings, request: MigrationRequest) -> dict[str, Any]:
    """Compatibility report, then what the streams' tables would do; raises (one line, nothing
    written) if the registry refuses the schema or an Iceberg table cannot express it."""
    registry = Registry(settings.schemas_dir)
    try:
        report = registry.check(request.subject, request.schema_text, mode=request.mode)
    except SchemaError as exc:
        raise MigrationError(str(exc)) from None
    for line in report.lines():
        print(line)
    if not report.compatible:
        reasons = "; ".join(f"{item.location or '/'}: {item}" for item in report.incompatibilities)
        raise MigrationError(f"refused: {report.summary()} — {len(report.incompatibilities)} problem(s): {reasons}")
    tables = [t for s in streams_of(settings, request.subject) for t in s.tables.values()]
    evolution = None
    if tables:  # a subject no stream reads has no table to follow it
        old = json.loads(registry.latest(request.subject).schema_json)
        plan = check_evolution(old, json.loads(request.schema_text), ", ".join(tables))
        evolution = plan.describe()
        print(f"tables: {evolution}")
    return {"compatible": True, "version": report.version, "mode": report.mode.value,
            "existing": report.existing.version if report.existing else None, "summary": report.summary(),
            "tables": evolution}


def register(settings: Settings, request: MigrationRequest) -> dict[str, Any]:
    """Register (atomic, idempotent) and return the version's number and schema id."""
    registry = Registry(settings.schemas_dir)
    try:
        version = registry.register(request.subject, request.schema_text, mode=request.mode)
    except SchemaError as exc:
        raise MigrationError(str(exc)) from None
    print(f"registered {request.subject} v{version.version} (schema id {version.schema_id})")
    return {"version": version.version, "schema_id": version.schema_id}


def streams_of(settings: Settings, subject: str) -> list[StreamConfig]:
    return [s for s in load_streams(settings.streams_file).values() if s.subject == subject]


def _reader_version(doc: dict[str, Any] | None) -> int | None:
    return (((doc or {}).get("decode_plan") or {}).get("reader") or {}).get("version")


def _running(doc: dict[str, Any] | None) -> bool:
    from kafkalake.stream.status import RUNNING, STARTING, with_liveness

    return bool(doc) and with_liveness(doc).get("state") in (RUNNING, STARTING)


def roll_streams(
    settings: Settings,
    subject: str,
    version: int,
    *,
    stop_timeout: float = 300.0,
    restart_timeout: float = 300.0,
    say: Callable[[str], None] = print,
) -> dict[str, str]:
    """Stop every running stream of ``subject`` at a batch boundary, then wait until its
    supervisor restarted it with reader ``version``. Streams that are not running are left
    alone (their next start reads the new version). Returns ``{stream: outcome}``."""
    from kafkalake.stream.driver import request_stop
    from kafkalake.stream.status import read_status

    outcome: dict[str, str] = {}
    for stream in streams_of(settings, subject):
        status_file = stream_paths(settings, stream).status_file
        doc = read_status(status_file)
        if not _running(doc):
            outcome[stream.name] = "not running: its next start reads the new version"
            say(f"{stream.name}: {outcome[stream.name]}")
            continue
        if _reader_version(doc) == version:
            outcome[stream.name] = f"already reading v{version}"
            say(f"{stream.name}: {outcome[stream.name]}")
            continue
        old_pid = int(doc.get("pid") or 0)
        request_stop(settings, stream)
        say(f"{stream.name}: stop requested (driver pid {old_pid}, reader v{_reader_version(doc)}); "
            "waiting for the batch boundary")
        deadline = time.monotonic() + stop_timeout
        while _running(read_status(status_file)) and int((read_status(status_file) or {}).get("pid") or 0) == old_pid:
            if time.monotonic() > deadline:
                raise MigrationError(f"stream {stream.name} did not stop within {stop_timeout:.0f}s; "
                                     f"see `kafkalake status` and its DAG stream_{stream.name}")
            time.sleep(1)
        say(f"{stream.name}: stopped; waiting for its supervisor (DAG stream_{stream.name}) to restart it")
        deadline = time.monotonic() + restart_timeout
        while True:
            doc = read_status(status_file)
            if _running(doc) and _reader_version(doc) == version and int(doc.get("pid") or 0) != old_pid:
                break
            if time.monotonic() > deadline:
                raise MigrationError(
                    f"stream {stream.name} stopped but was not restarted with v{version} within "
                    f"{restart_timeout:.0f}s: is DAG stream_{stream.name} unpaused? (`airflow dags unpause "
                    f"stream_{stream.name}`; or run `kafkalake stream run {stream.name}`)"
                )
            time.sleep(1)
        outcome[stream.name] = f"restarted with reader v{version} (driver pid {doc.get('pid')})"
        say(f"{stream.name}: {outcome[stream.name]}")
    return outcome
