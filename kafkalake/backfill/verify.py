"""A backfill's report: what the CLI prints, and its check against Kafka's offsets."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from kafkalake.backfill.plan import _offsets_at, plan_backfill
from kafkalake.backfill.request import BackfillError, BackfillVerificationError, parse_request, safe_name
from kafkalake.config import Settings
from kafkalake.lake.manifest import read_manifest
from kafkalake.lake.tables import Hour


def summary_lines(report: dict[str, Any]) -> list[str]:
    """What the CLI prints after a run."""
    name = f"{report['table']} ({report['format']})"
    if report.get("dry_run"):
        todo = [h for h in report["plan"] if h["action"] != "skip"]
        return [f"{name}: dry run, would replace {len(todo)} hour(s) (~{sum(h['offsets_in_range'] for h in todo):,} "
                f"records in Kafka) from {report['source']}; nothing changed"]
    totals = report.get("totals") or {}
    lines = [f"{name}: {totals.get('hours_replaced', 0)} hour(s) replaced from {report['source']} "
             f"(run {report.get('run_id')}): {totals.get('rows', 0):,} rows, {totals.get('quarantined', 0):,} "
             f"quarantined; {report.get('seconds', 0):.1f} s"]
    for h in report.get("hours", []):
        if h["action"] == "skip":
            lines.append(f"  {h['hour']}: skipped ({h['why']})")
        elif h["action"] == "quarantine only":
            lines.append(f"  {h['hour']}: no decodable records; {h['quarantined']:,} quarantined, "
                         f"{h['offsets_in_range']:,} offsets in range; no lake version")
        else:
            lines.append(f"  {h['hour']}: {h['rows']:,} rows in {h['output_files']} file(s), {h['quarantined']:,} "
                         f"quarantined, {h['offsets_in_range']:,} offsets in range, checksum {h['checksum']}")
    if report.get("records_outside_hours"):
        lines.append(f"  {report['records_outside_hours']:,} records read belong to other hours: left untouched")
    return lines


def verify_report(settings: Settings, report: dict[str, Any]) -> list[str]:
    """Check a finished backfill against Kafka and the manifest; the lines say what was checked.

    Per replaced hour: the manifest publishes this run's version with the reported rows, and
    ``rows + quarantined == offsets in range``, the offsets asked from Kafka again now (a
    landing rebuild compares with the landing's quarantine; an hour Kafka no longer holds
    completely cannot be checked against it and says so). One offset = one record: true for
    the platform's (non-transactional) producers; transaction markers would count as offsets
    and make the check fail loudly, never pass wrongly. Raises
    :class:`BackfillVerificationError` listing every mismatch with its figures.
    """
    from kafkalake.kafka.topics import admin_client, list_offsets
    from kafkalake.lake.tables import resolve_table

    name = f"{report['table']} ({report['format']})"
    if report.get("dry_run"):
        return [f"verify {name}: dry run, nothing published, nothing to verify "
                f"({len(report.get('plan', []))} hour(s) planned)"]
    stream, paths = resolve_table(settings, report["table"])
    manifest = read_manifest(paths)
    hours = [h for h in report.get("hours", []) if h["action"] != "skip"]
    lines, problems = [], []
    now: dict[str, int] = {}
    if hours:
        admin = admin_client(settings.bootstrap_servers)
        latest = list_offsets(admin, stream.topics, which="latest", where=settings.bootstrap_servers)
        keys = [Hour.parse(h["hour"]) for h in hours]
        moments = sorted({m for k in keys for m in (k.start, k.end)})
        at = dict(zip(moments, _offsets_at(admin, moments, latest), strict=True))
        now = {k.key: sum(max(0, at[k.end][tp] - at[k.start][tp]) for tp in latest) for k in keys}
    for h in hours:
        key = h["hour"]
        entry = manifest["hours"].get(key)
        if h["action"] == "quarantine only":
            rows = entry["rows"] if entry else 0
        elif entry is None or entry.get("run_id") != report["run_id"]:
            problems.append(f"{key}: the manifest publishes run {entry.get('run_id') if entry else None}, "
                            f"not this backfill's {report['run_id']}")
            continue
        else:
            rows = entry["rows"]
        if rows != h["rows"]:
            problems.append(f"{key}: the lake has {rows:,} rows, the job reported {h['rows']:,}")
            continue
        q = h["quarantined"]
        if not h.get("kafka_complete", True):
            lines.append(f"verify {key}: {rows:,} rows published, {q:,} quarantined; Kafka no longer holds "
                         f"the whole hour (retention): offsets check not possible")
            continue
        offsets = now[key]
        moved = f" (the job saw {h['offsets_in_range']:,})" if offsets != h["offsets_in_range"] else ""
        figure = f"{rows:,} rows == {offsets:,} offsets in range{moved} - {q:,} quarantined"
        if rows + q == offsets:
            lines.append(f"verify {key}: {figure}: ok")
        else:
            problems.append(f"{key}: {rows:,} rows + {q:,} quarantined != {offsets:,} offsets in range{moved}")
    for h in report.get("hours", []):
        if h["action"] == "skip":
            lines.append(f"verify {h['hour']}: skipped ({h['why']})")
    if problems:
        raise BackfillVerificationError(f"backfill {report.get('run_id')} of {name} does not add up in "
                                        f"{len(problems)} hour(s): " + "; ".join(problems))
    lines.append(f"verify {name}: {len(hours)} hour(s) of run {report['run_id']} add up with Kafka")
    return lines


def report_dir(settings: Settings) -> Path:
    return settings.state_dir / "reports" / "backfill"


def load_report(path: Path | str) -> dict[str, Any]:
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise BackfillError(f"no backfill report at {path}: did the backfill job run?") from None


def dag_job_args(settings: Settings, params: Mapping[str, Any], *, run_id: str,
                 progress: Callable[[str], None] = print) -> dict[str, Any]:
    """The backfill DAG's params -> the job's arguments and report path, after checking the
    request against the stream, Kafka and the lake (so a refusal fails the first task, not Spark)."""
    request = parse_request(
        params.get("table"), source=params.get("source") or "kafka", start=params.get("start"), end=params.get("end"),
        starting_offsets=params.get("starting_offsets"), ending_offsets=params.get("ending_offsets"),
    )
    dry_run = params.get("dry_run", True)
    if not isinstance(dry_run, bool):
        raise BackfillError(f"dry_run must be true or false, not {dry_run!r}")
    plan = plan_backfill(settings, request)
    for line in plan.describe():
        progress(line)
    report = report_dir(settings) / f"{safe_name(run_id)}.json"
    return {"args": request.job_args(report=report, dry_run=dry_run), "report": str(report), "table": request.table,
            "hours": [h.hour for h in plan.hours], "dry_run": dry_run}
