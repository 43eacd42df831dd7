"""Schema migration: roll a new schema version out under live traffic, losing nothing.

The notebook's scenario: fridges in homes cannot all be updated, so v1 devices keep sending while
the platform moves to v2 (adds ``temperature``). The steps, each a task of
``dags/schema_migration.py``:

1. **validate** — the params: subject name, schema text (JSON, Avro, defaults), mode override;
2. **check** — compatibility under the subject's mode (or the override): every incompatibility
   with its location. A refused schema stops here: nothing on disk changes;
3. **register** — atomic (the registry writes the ``.avsc``, then its index); idempotent;
4. **roll streams** — every stream reading the subject is asked to stop at a batch boundary;
   its supervisor DAG (``@continuous``) starts it again, and the new driver decodes with the
   new latest version as reader. Checkpoints stay valid: the Kafka offsets do not depend on
   the schema, and the file sink accepts the wider rows;
5. **migrate history** (optional) — rewrite every lake hour into the new schema with the new
   fields' defaults filled, through compaction's verify-and-publish machinery;
6. **verify** — the whole table reads with one schema (the new reader's fields), and the lake's
   row count per hour is unchanged.

Old rows read through :func:`kafkalake.lake.read_table` get null for new fields anyway; history
migration makes the files themselves uniform (for readers that do not go through the read path).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from kafkalake.config import Settings
from kafkalake.errors import ExitCode, KafkalakeError
from kafkalake.schema.model import Compatibility, SchemaError
from kafkalake.schema.registry import Registry
from kafkalake.schema.validation import validate_schema_text
from kafkalake.stream.config import StreamConfig, load_streams, stream_paths

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession


class MigrationError(KafkalakeError):
    """The migration cannot go on; the message says which step and why."""

    exit_code = ExitCode.MIGRATION


@dataclass(frozen=True)
class MigrationRequest:
    subject: str
    schema_text: str
    mode: Compatibility | None
    roll_streams: bool
    migrate_history: bool
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
                            bool(params.get("migrate_history", False)), bool(params.get("dry_run", False)))


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
    """Compatibility report; raises MigrationError listing every incompatibility if refused."""
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
    return {"compatible": True, "version": report.version, "mode": report.mode.value,
            "existing": report.existing.version if report.existing else None, "summary": report.summary()}


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


def lake_row_counts(settings: Settings, subject: str) -> dict[str, dict[str, int]]:
    """``{table: {hour: rows}}`` of the lake zone (from the manifests: no Spark)."""
    from kafkalake.lake.manifest import read_manifest
    from kafkalake.lake.tables import table_name, table_paths

    counts: dict[str, dict[str, int]] = {}
    for stream in streams_of(settings, subject):
        for fmt in stream.sink_formats:
            paths = table_paths(settings, stream, fmt)
            name = table_name(stream, fmt)
            counts[name] = {k: int(e["rows"]) for k, e in read_manifest(paths)["hours"].items()}
    return counts


def _with_defaults(df: DataFrame, reader_json: str, present: set[str]) -> DataFrame:
    """Fill the new fields of rows whose files predate them with the fields' defaults."""
    from pyspark.sql import functions as F

    for field in json.loads(reader_json)["fields"]:
        if field["name"] not in present and field.get("default") is not None:
            df = df.withColumn(field["name"], F.lit(field["default"]).cast(df.schema[field["name"]].dataType))
    return df


def migrate_history(spark: SparkSession, settings: Settings, subject: str, *,
                    say: Callable[[str], None] = print) -> dict[str, Any]:
    """Rewrite every lake hour whose files lack a field of the latest schema into that schema
    (defaults filled), through compaction's verify-and-publish machinery."""
    from kafkalake.lake.manifest import read_manifest
    from kafkalake.lake.publish import Compactor, HourResult, lock_table, recover
    from kafkalake.lake.read import read_lake_files
    from kafkalake.lake.tables import Hour, table_paths

    reader_json = Registry(settings.schemas_dir).latest(subject).schema_json
    wanted = {f["name"] for f in json.loads(reader_json)["fields"]}
    done: dict[str, Any] = {}
    for stream in streams_of(settings, subject):
        for fmt in stream.sink_formats:
            paths = table_paths(settings, stream, fmt)
            lock = lock_table(paths)
            try:
                recover(paths)
                compactor = Compactor(spark, stream, paths, reader_json, progress=say)
                manifest = read_manifest(paths)
                items = []
                for key, entry in sorted(manifest["hours"].items()):
                    files = [paths.lake / entry["dir"] / f for f in entry["files"]]
                    present = set(spark.read.format(fmt).load([str(f) for f in files]).columns)
                    if wanted <= present:
                        continue
                    source = _with_defaults(read_lake_files(spark, fmt, files, compactor.schema), reader_json, present)
                    sizes = [f.stat().st_size for f in files]
                    result = HourResult(key, len(files), sum(sizes), sizes)
                    items.append((Hour.parse(key), len(files), entry["source_fingerprint"], source, result))
                say(f"{paths.name} ({fmt}): {len(items)} lake hour(s) to rewrite into {subject} v-latest")
                results = compactor.run(items, origin="migration", extra={
                    r.hour: {"landing_fingerprint": manifest["hours"][r.hour].get("landing_fingerprint"),
                             "landing_removed": manifest["hours"][r.hour].get("landing_removed", False)}
                    for *_x, r in items
                }) if items else []
                compactor.cleanup()
                done[f"{paths.name}.{fmt}"] = {"hours": len(results), "rows": sum(r.rows for r in results)}
            finally:
                lock.close()
    return done


def verify(spark: SparkSession, settings: Settings, subject: str, before: dict[str, dict[str, int]]) -> dict[str, Any]:
    """One schema across the table (the new reader's fields) and unchanged lake row counts."""
    from kafkalake.lake.read import read_table

    reader = json.loads(Registry(settings.schemas_dir).latest(subject).schema_json)
    fields = [f["name"] for f in reader["fields"]]
    after = lake_row_counts(settings, subject)
    out: dict[str, Any] = {}
    for table, hours in before.items():
        changed = {h: (n, after.get(table, {}).get(h)) for h, n in hours.items() if after.get(table, {}).get(h) != n}
        if changed:
            raise MigrationError(f"{table}: lake row counts changed during the migration: {changed}")
        df = read_table(spark, table, settings=settings)
        missing = [f for f in fields if f not in df.columns]
        if missing:
            raise MigrationError(f"{table}: reads without {', '.join(missing)} after the migration")
        by_version = {int(r["schema_version"] or 0): int(r["n"]) for r in
                      df.groupBy("schema_version").count().withColumnRenamed("count", "n").collect()}
        out[table] = {"columns": df.columns, "rows_by_version": by_version, "lake_hours": len(hours)}
        print(f"{table}: {sum(by_version.values()):,} rows, one schema: {', '.join(df.columns)}; "
              f"by writer version: {by_version}")
    return out
