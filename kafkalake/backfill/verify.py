"""A backfill's report: what the CLI prints, and its check against Kafka's offsets."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from kafkalake.backfill.plan import _offsets_at, plan_backfill, rows_by_hour
from kafkalake.backfill.request import BackfillError, BackfillVerificationError, parse_request, safe_name
from kafkalake.config import Settings
from kafkalake.lake.tables import Hour


def summary_lines(report: dict[str, Any]) -> list[str]:
    """What the CLI prints after a run."""
    name = f"{report['table']} + {report.get('quarantine_table', '')}"
    if report.get("dry_run"):
        todo = [h for h in report["plan"] if h["action"] != "skip"]
        return [f"{name}: dry run, would replace {len(todo)} hour(s) (~{sum(h['offsets_in_range'] for h in todo):,} "
                f"records in Kafka); nothing changed"]
    totals = report.get("totals") or {}
    lines = [f"{name}: {totals.get('hours', 0)} hour(s) backfilled from Kafka (run {report.get('run_id')}): "
             f"{totals.get('rows', 0):,} rows, {totals.get('quarantined', 0):,} quarantined; "
             f"{report.get('seconds', 0):.1f} s"]
    for table, done in (report.get("tables") or {}).items():
        if done["hours_replaced"] or done["hours_emptied"]:
            lines.append(f"  {table}: {len(done['hours_replaced'])} hour(s) replaced in snapshot "
                         f"{done['published_snapshot']}, {len(done['hours_emptied'])} emptied")
        else:
            lines.append(f"  {table}: unchanged (every hour already holds these rows), no commit")
    for h in report.get("hours", []):
        if h["action"] == "skip":
            lines.append(f"  {h['hour']}: skipped ({h['why']})")
        else:
            lines.append(f"  {h['hour']}: {h['rows']:,} rows, {h['quarantined']:,} quarantined, "
                         f"{h['offsets_in_range']:,} offsets in range, checksum {h['checksum'] or '-'}")
    if report.get("records_outside_hours"):
        lines.append(f"  {report['records_outside_hours']:,} records read belong to other hours: left untouched")
    return lines


def verify_report(settings: Settings, report: dict[str, Any]) -> list[str]:
    """Check a finished backfill against Kafka and the tables; the lines say what was checked.

    Per hour: the table and its quarantine table hold the reported rows (their metadata, now),
    and ``rows + quarantined == offsets in range``, the offsets asked from Kafka again. One
    offset = one record: true for the platform's (non-transactional) producers; transaction
    markers would count as offsets and make the check fail loudly, never pass wrongly. Raises
    :class:`BackfillVerificationError` listing every mismatch with its figures.
    """
    from kafkalake.kafka.topics import admin_client, list_offsets
    from kafkalake.lake.tables import resolve_table

    name = f"{report['table']} + {report['quarantine_table']}"
    if report.get("dry_run"):
        return [f"verify {name}: dry run, nothing published, nothing to verify "
                f"({len(report.get('plan', []))} hour(s) planned)"]
    stream, _ref = resolve_table(settings, report["table"])
    hours = [h for h in report.get("hours", []) if h["action"] != "skip"]
    keys = [Hour.parse(h["hour"]) for h in hours]
    lines, problems = [], []
    now: dict[str, int] = {}
    if keys:
        admin = admin_client(settings.bootstrap_servers)
        latest = list_offsets(admin, stream.topics, which="latest", where=settings.bootstrap_servers)
        moments = sorted({m for k in keys for m in (k.start, k.end)})
        at = dict(zip(moments, _offsets_at(admin, moments, latest), strict=True))
        now = {k.key: sum(max(0, at[k.end][tp] - at[k.start][tp]) for tp in latest) for k in keys}
    rows_now = rows_by_hour(settings, report["table"], keys)
    bad_now = rows_by_hour(settings, report["quarantine_table"], keys)
    for h in hours:
        key, rows, q = h["hour"], rows_now[h["hour"]], bad_now[h["hour"]]
        if (rows, q) != (h["rows"], h["quarantined"]):
            problems.append(f"{key}: the tables have {rows:,} rows + {q:,} quarantined, the job reported "
                            f"{h['rows']:,} + {h['quarantined']:,}")
            continue
        offsets = now[key]
        moved = f" (the job saw {h['offsets_in_range']:,})" if offsets != h["offsets_in_range"] else ""
        if rows + q == offsets:
            lines.append(f"verify {key}: {rows:,} rows == {offsets:,} offsets in range{moved} - {q:,} quarantined: ok")
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
    request against the stream, Kafka and the tables (so a refusal fails the first task, not Spark)."""
    request = parse_request(
        params.get("table"), start=params.get("start"), end=params.get("end"),
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
