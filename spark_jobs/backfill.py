"""spark-submit entry point: replace whole closed hours of a table (and its quarantine table) from Kafka.

    backfill TABLE --start ISO --end ISO
             [--starting-offsets JSON --ending-offsets JSON] [--dry-run] [--report PATH]

``end`` is exclusive; the logic is in :mod:`kafkalake.backfill`.
"""

from __future__ import annotations

import argparse
import sys
import traceback
from pathlib import Path


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("table", help="table name, e.g. fridge or fridge_avro")
    p.add_argument("--start", required=True, help="first hour replaced, e.g. 2026-11-24T05:00Z")
    p.add_argument("--end", required=True, help="end of the range, exclusive, on a whole hour")
    p.add_argument("--starting-offsets", help='Kafka by offsets: {"topic": {"0": first, ...}} (-2: earliest)')
    p.add_argument("--ending-offsets", help='Kafka by offsets: {"topic": {"0": end, ...}}, exclusive (-1: latest)')
    p.add_argument("--dry-run", action="store_true", help="print the plan, change nothing")
    p.add_argument("--report", type=Path, help="write the run's JSON report here")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)

    from kafkalake._files import write_json_atomic
    from kafkalake.backfill.request import parse_request
    from kafkalake.backfill.run import run_backfill
    from kafkalake.config import get_settings
    from kafkalake.errors import KafkalakeError
    from kafkalake.spark.session import get_session

    try:
        request = parse_request(args.table, start=args.start, end=args.end,
                                starting_offsets=args.starting_offsets, ending_offsets=args.ending_offsets)
        report = run_backfill(
            get_settings(), request, dry_run=args.dry_run,
            spark_factory=lambda: get_session("kafkalake-backfill"),
            progress=lambda line: print(line, flush=True),
        )
    except KafkalakeError as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        return exc.exit_code
    except Exception as exc:  # Spark or the catalog failed outside the rewrite: the trace, then one line
        from kafkalake.catalog.iceberg import error_line
        from kafkalake.errors import ExitCode

        traceback.print_exc()
        print(f"error: backfill failed: {error_line(exc)}; nothing is published unless the log says so; "
              "run it again (a backfill is idempotent)", file=sys.stderr, flush=True)
        return ExitCode.BACKFILL
    if args.report:
        args.report.parent.mkdir(parents=True, exist_ok=True)
        write_json_atomic(args.report, report, indent=1)
        print(f"report: {args.report}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
