"""``kafkalake compact`` and ``backfill``: jobs that rewrite hours of the lake."""

from __future__ import annotations

from pathlib import Path

import typer

from kafkalake.cli.app import _say, _settings, app


@app.command("compact")
def compact(
    tables: list[str] | None = typer.Argument(
        None, help="tables (fridge, fridge_avro, fridge_quarantine); default: every table"
    ),
    first: str | None = typer.Option(None, "--from", help="first hour, e.g. 2026-11-24T05:00Z"),
    last: str | None = typer.Option(None, "--to", help="last hour (inclusive)"),
    target_mb: int | None = typer.Option(None, "--target-mb", min=1, help="target output file size in MiB"),
    dry_run: bool = typer.Option(False, "--dry-run", help="print the plan, change nothing"),
    closed_before: str | None = typer.Option(None, "--closed-before", help="only hours ending before this (ISO)"),
    report: Path | None = typer.Option(None, "--report", help="JSON report path (a PNG histogram goes beside it)"),
) -> None:
    """Merge small files of closed hours of Iceberg tables (spark_jobs/compact.py): verified, one commit a table."""
    import time as _time

    from kafkalake.compaction import report as compaction_report
    from kafkalake.compaction.run import report_dir
    from kafkalake.lake.tables import Hour
    from kafkalake.spark.submit import run_job

    settings = _settings()
    for value in (first, last):
        if value:
            Hour.parse(value)  # a clear error before Spark starts
    report = report or report_dir(settings) / f"{_time.strftime('%Y%m%dT%H%M%S')}.json"
    args = [*(tables or []), "--report", str(report)]
    args += ["--from", first] if first else []
    args += ["--to", last] if last else []
    args += ["--target-mb", str(target_mb)] if target_mb else []
    args += ["--closed-before", closed_before] if closed_before else []
    args += ["--dry-run"] if dry_run else []
    result = run_job(settings, "compact", args)
    if result.returncode != 0:
        raise typer.Exit(result.returncode)
    run = compaction_report.load(report)
    for line in compaction_report.summary_lines(run):
        _say(line)
    if not dry_run:
        _say(f"report: {report}  histogram: {compaction_report.render_png(run, report.with_suffix('.png'))}")


@app.command("backfill")
def backfill(
    table: str = typer.Argument(..., help="table, e.g. fridge or fridge_avro (its quarantine hours go with it)"),
    start: str = typer.Option(..., "--start", help="first hour replaced, ISO on a whole hour, e.g. 2026-11-24T05:00Z"),
    end: str = typer.Option(..., "--end", help="end of the range, exclusive (05:00Z..07:00Z = hours 05 and 06)"),
    starting_offsets: str | None = typer.Option(
        None,
        "--starting-offsets",
        help='replay by offsets: {"topic": {"0": first}} (-2 = earliest); must cover the hours',
    ),
    ending_offsets: str | None = typer.Option(
        None, "--ending-offsets", help='replay by offsets: {"topic": {"0": end}} exclusive (-1 = latest)'
    ),
    dry_run: bool = typer.Option(False, "--dry-run", help="print the plan (hours, records per hour), change nothing"),
    report: Path | None = typer.Option(None, "--report", help="JSON report path"),
) -> None:
    """Replace whole closed hours of a table and its quarantine table from Kafka (spark_jobs/backfill.py)."""
    import time as _time

    from kafkalake._files import write_json_atomic
    from kafkalake.backfill.plan import plan_backfill
    from kafkalake.backfill.request import parse_request, safe_name
    from kafkalake.backfill.run import run_backfill
    from kafkalake.backfill.verify import load_report, report_dir, summary_lines, verify_report
    from kafkalake.spark.submit import run_job

    settings = _settings()
    request = parse_request(table, start=start, end=end,
                            starting_offsets=starting_offsets, ending_offsets=ending_offsets)
    if dry_run:  # the plan needs Kafka and the tables' metadata, not Spark
        run = run_backfill(settings, request, dry_run=True, progress=_say)
        if report:
            write_json_atomic(report, run, indent=1)
        for line in summary_lines(run):
            _say(line)
        return
    plan_backfill(settings, request)  # a refusal is one line, before Spark starts
    report = report or report_dir(settings) / f"{_time.strftime('%Y%m%dT%H%M%S')}-{safe_name(table)}.json"
    result = run_job(settings, "backfill", request.job_args(report=report))
    if result.returncode != 0:
        raise typer.Exit(result.returncode)
    run = load_report(report)
    for line in summary_lines(run):
        _say(line)
    _say(f"report: {report}")
    for line in verify_report(settings, run):  # a mismatch raises: one line, exit 10
        _say(line)
