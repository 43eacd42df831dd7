"""Run every benchmark (or those named: ``python -m benchmarks producer``)."""

from __future__ import annotations

import argparse
import sys

from benchmarks import compaction_bench, housekeeping_bench, ingest_bench, latency_bench, producer_bench, scale_bench

BENCHMARKS = {"producer": producer_bench.main, "ingest": ingest_bench.main, "latency": latency_bench.main,
              "housekeeping": housekeeping_bench.main, "compaction": compaction_bench.main,
              "scale": scale_bench.main}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("names", nargs="*", choices=[[], *BENCHMARKS], help="benchmarks to run (default: all)")
    parser.add_argument("--records", type=int, default=None, help="override the record count")
    args = parser.parse_args(argv)
    failed = 0
    for name in args.names or list(BENCHMARKS):
        failed += BENCHMARKS[name](records=args.records)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
