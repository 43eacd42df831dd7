"""spark-submit entry point: the schema-migration DAG's Spark step.

    migrate.py SUBJECT [--history] [--before JSON] [--report PATH]

With ``--history``, rewrites lake hours into the subject's latest schema (defaults filled);
then verifies that every table of the subject reads with one schema and that the lake's row
counts per hour equal ``--before`` (taken before the migration started).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("subject")
    parser.add_argument("--history", action="store_true", help="rewrite lake hours into the latest schema")
    parser.add_argument("--before", default="{}", help="lake row counts per table and hour before the migration (JSON)")
    parser.add_argument("--report", type=Path, help="write the result as JSON here")
    args = parser.parse_args(argv)

    from kafkalake._files import write_json_atomic
    from kafkalake.config import get_settings
    from kafkalake.errors import KafkalakeError
    from kafkalake.migration.rollout import migrate_history, verify
    from kafkalake.spark.session import get_session

    settings = get_settings()
    try:
        before = json.loads(args.before)
        spark = get_session(f"kafkalake-migrate-{args.subject}")
        result = {"history": migrate_history(spark, settings, args.subject) if args.history else None}
        result["verify"] = verify(spark, settings, args.subject, before)
    except KafkalakeError as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        return exc.exit_code
    except json.JSONDecodeError as exc:
        print(f"error: --before is not JSON: {exc}", file=sys.stderr, flush=True)
        return 2
    if args.report:
        args.report.parent.mkdir(parents=True, exist_ok=True)
        write_json_atomic(args.report, result, indent=1, default=str)
    print(json.dumps({"migration": result}, default=str), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
