"""A compaction run over one or more tables: plan, merge, clean up, report.

Per table: drop the branches an interrupted run left, merge the planned hours in one
verified commit (:mod:`kafkalake.compaction.merge`), then, when a sweep is due, remove files
under the table no snapshot references that are older than ``compaction.orphan_grace_minutes``
(a write killed before its commit). A sweep is due every ``compaction.orphan_sweep_hours``
and right after a run recovered an interrupted one (:class:`OrphanSweeps`). Spark starts only
for a table that exists and only when not a dry run.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kafkalake._files import write_json_atomic
from kafkalake.catalog.config import catalog_config
from kafkalake.compaction.merge import ORIGIN, CompactionError, merge_hours, output_summary
from kafkalake.compaction.plan import NOTHING_CLOSED, hour_files, plan_table
from kafkalake.config import Settings
from kafkalake.lake.tables import Hour, LakeError, TableRef
from kafkalake.stream.config import StreamConfig
from kafkalake.stream.watermark import StreamNotStarted, closed_before

if TYPE_CHECKING:
    from pyspark.sql import SparkSession


def compact_table(
    spark: SparkSession | Callable[[], SparkSession] | None,
    settings: Settings,
    stream: StreamConfig,
    ref: TableRef,
    *,
    closed_before: datetime,
    first: Hour | None = None,
    last: Hour | None = None,
    target_mb: int | None = None,
    dry_run: bool = False,
    progress: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Plan, and unless ``dry_run`` compact, one table. Returns the run's report (JSON-able).
    ``spark``: a session, or a factory called only when the table needs one."""
    from kafkalake.catalog.iceberg import error_line, load_table, remove_orphan_files
    from kafkalake.lake.rewrite import drop_stale_branches

    started = time.monotonic()
    plan = plan_table(settings, stream, ref, closed_before=closed_before, first=first, last=last, target_mb=target_mb)
    for line in plan.describe():
        progress(line)
    report: dict[str, Any] = {
        "table": ref.name, "stream": stream.name, "format": plan.fmt, "dry_run": dry_run,
        "snapshot_id": plan.snapshot_id, "plan": [asdict(h) for h in plan.hours],
        "closed_before": plan.closed_before, "target_bytes": plan.target_bytes, "hours": [], "recovered": [],
    }
    if dry_run or plan.snapshot_id is None:
        report["seconds"] = round(time.monotonic() - started, 3)
        report.update(summarize(report))
        return report
    if spark is None:
        raise CompactionError("compaction needs a Spark session for this table")
    active = spark() if callable(spark) else spark
    config = catalog_config(settings)
    sweeps = OrphanSweeps(settings)
    for branch in drop_stale_branches(active, config, ref.name, ORIGIN):
        report["recovered"].append(f"dropped branch {branch} of an interrupted run")
        progress(f"  recovered: dropped branch {branch} of an interrupted run")
        sweeps.mark_due(ref.name)
    if plan.to_compact:
        rewrite = merge_hours(active, config, stream, ref, plan, progress=progress)
        report["published_snapshot"] = rewrite.published_snapshot
        report["phase_seconds"] = rewrite.seconds
        _snapshot, after = hour_files(settings, ref.name, rewrite.published_snapshot)
        report["hours"] = [output_summary(asdict(h), after.get(Hour.parse(h.hour), [])) for h in plan.to_compact]
    due = sweeps.due_at(ref.name, stream.compaction.orphan_sweep_hours)
    report["orphan_files_removed"] = None
    if due > time.time():
        report["orphan_sweep_due_at"] = datetime.fromtimestamp(due, UTC).isoformat(timespec="seconds")
    else:
        try:
            report["orphan_files_removed"] = remove_orphan_files(
                active, load_table(active, config, ref.name), older_than_minutes=stream.compaction.orphan_grace_minutes)
            sweeps.swept(ref.name)
        except Exception as exc:  # housekeeping only: what was published stays published
            report["orphan_files_error"] = error_line(exc)
            progress(f"  warning: orphan files not removed ({error_line(exc)}); the next run tries again")
    report["seconds"] = round(time.monotonic() - started, 3)
    report.update(summarize(report))
    return report


class OrphanSweeps:
    """When each table's orphan files were last swept (``$STATE/compaction/orphan-sweeps.json``).

    A table never swept, or marked by a run that recovered an interrupted one, is due at once;
    a missing or unreadable file makes every table due (a sweep too many costs seconds, one too
    few leaves a killed write's files for another period)."""

    def __init__(self, settings: Settings) -> None:
        self.path = settings.state_dir / "compaction" / "orphan-sweeps.json"

    def _read(self) -> dict[str, float]:
        try:
            data = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return {}
        return {k: float(v) for k, v in data.items() if isinstance(v, (int, float))} if isinstance(data, dict) else {}

    def _write(self, data: dict[str, float]) -> None:
        write_json_atomic(self.path, data, indent=1)

    def due_at(self, table: str, every_hours: float) -> float:
        """Epoch seconds from which ``table`` is due (the past: due now)."""
        last = self._read().get(table)
        return 0.0 if last is None or every_hours <= 0 else last + every_hours * 3600

    def swept(self, table: str) -> None:
        data = self._read()
        data[table] = time.time()
        self._write(data)

    def mark_due(self, table: str) -> None:
        data = self._read()
        if data.pop(table, None) is not None:
            self._write(data)


def summarize(report: dict[str, Any]) -> dict[str, Any]:
    """Totals an operator looks at: files and bytes before/after, rows, mean file size."""
    hours = report.get("hours", [])
    files_before = sum(h["source_files"] for h in hours)
    files_after = sum(h["output_files"] for h in hours)
    bytes_before = sum(h["source_bytes"] for h in hours)
    bytes_after = sum(h["output_bytes"] for h in hours)
    return {"totals": {
        "hours_compacted": len(hours),
        "hours_skipped": sum(1 for h in report.get("plan", []) if h["action"] == "skip"),
        "files_before": files_before, "files_after": files_after,
        "bytes_before": bytes_before, "bytes_after": bytes_after,
        "rows": sum(h["rows"] for h in hours),
        "mean_file_bytes_before": bytes_before / files_before if files_before else 0,
        "mean_file_bytes_after": bytes_after / files_after if files_after else 0,
    }}


def report_dir(settings: Settings) -> Path:
    return settings.state_dir / "reports" / "compaction"


def run_compaction(
    settings: Settings,
    tables: list[str] | None,
    *,
    first: Hour | None = None,
    last: Hour | None = None,
    target_mb: int | None = None,
    dry_run: bool = False,
    closed_before_limit: datetime | None = None,
    spark_factory: Callable[[], SparkSession] | None = None,
    progress: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Compact the named tables (``fridge``, ``fridge_avro``, ``fridge_quarantine``; all of
    every stream, quarantine tables too, when empty): the job's body."""
    from kafkalake.lake.tables import all_tables, resolve_table

    if first and last and last < first:
        raise LakeError(f"hour range is empty: {last.key} is before {first.key}")
    chosen = [resolve_table(settings, t) for t in tables] if tables else all_tables(settings, quarantine=True)
    started = time.monotonic()
    out: dict[str, Any] = {"dry_run": dry_run, "tables": [], "started_at": time.time()}
    cutoffs: dict[str, datetime] = {}
    started_spark: list[SparkSession] = []

    def spark() -> SparkSession:
        if not started_spark:
            if spark_factory is None:
                raise CompactionError("no Spark session factory given")
            started_spark.append(spark_factory())
        return started_spark[0]

    for stream, ref in chosen:
        if stream.name not in cutoffs:
            try:
                cutoffs[stream.name] = closed_before(settings, stream, limit=closed_before_limit)
            except StreamNotStarted as exc:
                if tables:  # named on purpose: say why nothing can happen
                    raise
                # "all" (the hourly run): a stream that has not started yet has nothing closed;
                # it must not fail the run for the tables that have
                progress(f"{stream.name}: skipped: {exc}")
                cutoffs[stream.name] = NOTHING_CLOSED
        out["tables"].append(compact_table(
            spark, settings, stream, ref, closed_before=cutoffs[stream.name], first=first, last=last,
            target_mb=target_mb, dry_run=dry_run, progress=progress,
        ))
    out["seconds"] = round(time.monotonic() - started, 3)
    return out


def dag_job_args(
    settings: Settings,
    params: dict[str, Any],
    *,
    run_id: str,
    run_type: Any,
    interval: tuple[datetime | None, datetime | None] = (None, None),
) -> dict[str, Any]:
    """The compaction DAG's params -> the job's arguments and report path, validated.

    Hours come from the params; else a backfill run (``airflow backfill create``) covers its
    data interval; else (scheduled, manual) every closed hour — each run is idempotent, so a
    scheduled run also catches up anything an earlier one missed.
    """
    import re

    from kafkalake.lake.tables import resolve_table

    # the Task SDK hands over its own DagRunType enum, whose str() is "DagRunType.BACKFILL"
    run_type = str(getattr(run_type, "value", run_type))
    table = str(params.get("table") or "all")
    tables = [] if table == "all" else [table]
    for name in tables:
        resolve_table(settings, name)  # unknown table / format: one clear line
    first = Hour.parse(params["hour_from"]) if params.get("hour_from") else None
    last = Hour.parse(params["hour_to"]) if params.get("hour_to") else None
    if first is None and last is None and run_type == "backfill" and interval[0] and interval[1]:
        first = Hour.of(interval[0])
        last = Hour.of(interval[1] - timedelta(hours=1))
        if last < first:
            last = first
    if first and last and last < first:
        raise LakeError(f"hour_to {last.key} is before hour_from {first.key}")
    target = params.get("target_mb")
    if target is not None and (isinstance(target, bool) or not isinstance(target, int) or target < 1):
        raise LakeError(f"target_mb must be a whole number of MiB >= 1, not {target!r}")
    safe_run = re.sub(r"[^A-Za-z0-9_.-]+", "_", run_id)[:120]
    report = report_dir(settings) / f"{safe_run}.json"
    args = [*tables, "--report", str(report)]
    args += ["--from", first.start.isoformat()] if first else []
    args += ["--to", last.start.isoformat()] if last else []
    args += ["--target-mb", str(target)] if target else []
    args += ["--dry-run"] if params.get("dry_run") else []
    return {"args": args, "report": str(report), "tables": tables or "all",
            "hours": [first.key if first else None, last.key if last else None]}
