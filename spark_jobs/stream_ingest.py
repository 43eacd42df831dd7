"""spark-submit entry point: one stream of streams.yaml, Kafka -> landing zone.

    kafkalake stream run NAME [--available-now] [--debug-sink console|memory]
"""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("stream", help="a stream name from streams.yaml")
    parser.add_argument("--available-now", action="store_true", help="process what is in Kafka, then stop")
    parser.add_argument("--debug-sink", choices=("console", "memory"), help="print instead of landing files")
    args = parser.parse_args(argv)

    from kafkalake.config import get_settings
    from kafkalake.errors import KafkalakeError
    from kafkalake.spark.session import get_session
    from kafkalake.stream.config import get_stream
    from kafkalake.stream.job import run_stream

    settings = get_settings()
    try:
        stream = get_stream(settings, args.stream)
        spark = get_session(f"kafkalake-stream-{stream.name}")
        return run_stream(spark, settings, stream, available_now=args.available_now, debug_sink=args.debug_sink)
    except KafkalakeError as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        return exc.exit_code


if __name__ == "__main__":
    sys.exit(main())
