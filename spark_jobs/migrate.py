"""spark-submit entry point: the schema-migration DAG's evolve step.

    migrate.py SUBJECT [--report PATH]

Creates the missing tables of SUBJECT's streams and evolves the existing ones to its latest
version (new columns with their defaults, widened types; no data file rewritten), then checks
that every table holds that version (kafkalake.migration.evolve).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("subject")
    parser.add_argument("--report", type=Path, help="write the result as JSON here")
    args = parser.parse_args(argv)

    from kafkalake._files import write_json_atomic
    from kafkalake.config import get_settings
    from kafkalake.errors import KafkalakeError
    from kafkalake.migration.evolve import evolve_tables
    from kafkalake.spark.session import get_session

    settings = get_settings()
    try:
        spark = get_session(f"kafkalake-migrate-{args.subject}")
        result = evolve_tables(spark, settings, args.subject, say=lambda line: print(line, flush=True))
    except KafkalakeError as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        return exc.exit_code
    if args.report:
        args.report.parent.mkdir(parents=True, exist_ok=True)
        write_json_atomic(args.report, result, indent=1, default=str)
    print(json.dumps({"evolved": result}, default=str), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
