"""spark-submit entry point: one stream of streams.yaml, Kafka -> its Iceberg tables.

    kafkalake stream run NAME [--available-now] [--debug-sink console|memory]
"""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("stream", help="a stream name from streams.yaml")
    parser.add_argument("--available-now", action="store_true", help="process what is in Kafka, then stop")
    parser.add_argument("--debug-sink", choices=("console", "memory"), help="print instead of committing to the tables")
    args = parser.parse_args(argv)

    from kafkalake.config import ConfigError, get_settings
    from kafkalake.errors import KafkalakeError
    from kafkalake.spark.session import get_session
    from kafkalake.stream.config import get_stream
    from kafkalake.stream.job import exit_code_for, run_stream

    try:
        settings = get_settings()
        stream = get_stream(settings, args.stream)
        spark = get_session(f"kafkalake-stream-{stream.name}")
        return run_stream(spark, settings, stream, available_now=args.available_now, debug_sink=args.debug_sink)
    except (KafkalakeError, ConfigError) as exc:
        # one line the supervisor DAG shows as the reason; a refused declaration exits with a
        # final code (kafkalake.stream.job.REFUSED_DECLARATION), so it is not retried
        print(f"error: {exc}", file=sys.stderr, flush=True)
        return exit_code_for(exc)


if __name__ == "__main__":
    sys.exit(main())
