"""spark-submit entry point: Kafka source + Avro round trip with the Maven jars.

    kafkalake spark submit connector_check [--topic T] [--expect-rows N]

Prints one JSON line prefixed ``RESULT`` and exits non-zero when the check fails.
"""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--topic", default="", help="Kafka topic to read; empty = 100 generated rows")
    parser.add_argument("--expect-rows", type=int, default=0, help="fail unless exactly this many rows (0: any)")
    args = parser.parse_args(argv)

    from kafkalake.config import get_settings
    from kafkalake.errors import ExitCode
    from kafkalake.spark.connector_check import kafka_rows, run_check
    from kafkalake.spark.session import get_session, read_topic_batch

    settings = get_settings()
    spark = get_session("kafkalake-connector-check")
    if args.topic:
        raw = read_topic_batch(spark, bootstrap_servers=settings.bootstrap_servers, topic=args.topic)
        rows, source = kafka_rows(raw), f"kafka:{args.topic}"
    else:
        rows = spark.range(100).selectExpr(
            "cast(id as string) as key", "concat('value-', id) as value",
            "cast(id % 2 as int) as partition", "id as offset",
        )
        source = "generated"
    result = run_check(rows, source=source)
    print("RESULT " + result.to_json(), flush=True)
    spark.stop()
    if not result.ok:
        print(f"error: {result.roundtrip_mismatches} rows differ after to_avro/from_avro", file=sys.stderr)
        return 1
    if args.expect_rows and result.rows != args.expect_rows:
        print(f"error: read {result.rows} rows from {source}, expected {args.expect_rows}", file=sys.stderr)
        return ExitCode.CHECK_FAILED
    return 0


if __name__ == "__main__":
    sys.exit(main())
