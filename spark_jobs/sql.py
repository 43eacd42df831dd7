"""spark-submit entry point: run Spark SQL against the platform's Iceberg catalog and print the result.

    kafkalake sql "SELECT ... FROM kafkalake.lake.fridge"
"""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("statements", nargs="+", help="SQL statements, run in order; each result is printed")
    parser.add_argument("--rows", type=int, default=20, help="rows to print per result")
    args = parser.parse_args(argv)

    from kafkalake.spark.session import get_session

    spark = get_session("kafkalake-sql")
    for statement in args.statements:
        print(f"> {statement}", flush=True)
        try:
            spark.sql(statement).show(args.rows, truncate=False)
        except Exception as exc:  # AnalysisException, ParseException: the user's SQL
            print(f"error: {str(exc).strip().splitlines()[0]}", file=sys.stderr, flush=True)
            return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
