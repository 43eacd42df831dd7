"""spark-submit entry point: compact the closed hours of Iceberg tables, verified, one commit per table.

    kafkalake compact [TABLE ...] [--from HOUR] [--to HOUR] [--target-mb N] [--dry-run]
"""

from __future__ import annotations

import argparse
import sys
import traceback
from datetime import UTC
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "tables", nargs="*", help="tables (fridge, fridge_avro, fridge_quarantine); default: every table"
    )
    parser.add_argument("--from", dest="first", help="first hour, e.g. 2026-11-24T05:00Z (default: the oldest)")
    parser.add_argument("--to", dest="last", help="last hour, inclusive (default: the newest closed one)")
    parser.add_argument(
        "--target-mb", type=int, help="target output file size (default: the stream's compaction.target_file_mb)"
    )
    parser.add_argument("--dry-run", action="store_true", help="print the plan, change nothing")
    parser.add_argument(
        "--closed-before", help="hours ending after this are not touched (required for a table no stream feeds)"
    )
    parser.add_argument("--report", type=Path, help="write the run's JSON report here")
    args = parser.parse_args(argv)

    from datetime import datetime

    from kafkalake._files import write_json_atomic
    from kafkalake.compaction.run import run_compaction
    from kafkalake.config import get_settings
    from kafkalake.errors import KafkalakeError
    from kafkalake.lake.tables import Hour
    from kafkalake.spark.session import get_session

    settings = get_settings()
    try:
        limit = None
        if args.closed_before:
            limit = datetime.fromisoformat(args.closed_before)
            limit = limit if limit.tzinfo else limit.replace(tzinfo=UTC)
        report = run_compaction(
            settings, args.tables,
            first=Hour.parse(args.first) if args.first else None,
            last=Hour.parse(args.last) if args.last else None,
            target_mb=args.target_mb, dry_run=args.dry_run, closed_before_limit=limit,
            spark_factory=lambda: get_session("kafkalake-compact"),
            progress=lambda line: print(line, flush=True),
        )
    except KafkalakeError as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        return exc.exit_code
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        return 2
    except Exception as exc:  # Spark or the catalog failed outside a merge: the trace, then one line
        from kafkalake.catalog.iceberg import error_line
        from kafkalake.errors import ExitCode

        traceback.print_exc()
        print(f"error: compaction failed: {error_line(exc)}; a table the log says published stays published, "
              "the next run plans the rest again", file=sys.stderr, flush=True)
        return ExitCode.COMPACTION
    if args.report:
        args.report.parent.mkdir(parents=True, exist_ok=True)
        write_json_atomic(args.report, report, indent=1)
        print(f"report: {args.report}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
