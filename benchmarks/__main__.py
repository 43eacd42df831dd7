"""Run every benchmark (or those named: ``python -m benchmarks producer``)."""

from __future__ import annotations

import argparse
import inspect
import sys

from benchmarks import compaction_bench, housekeeping_bench, ingest_bench, latency_bench, producer_bench, scale_bench

BENCHMARKS = {"producer": producer_bench.main, "ingest": ingest_bench.main, "latency": latency_bench.main,
              "housekeeping": housekeeping_bench.main, "compaction": compaction_bench.main,
              "scale": scale_bench.main}
#: the benchmarks that compare contenders over rounds (their ``main`` takes ``rounds``)
ROUNDED = tuple(name for name, run in BENCHMARKS.items() if "rounds" in inspect.signature(run).parameters)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("names", nargs="*", choices=[[], *BENCHMARKS], help="benchmarks to run (default: all)")
    parser.add_argument("--records", type=int, default=None, help="override the record count")
    parser.add_argument("--rounds", type=int, default=None,
                        help=f"rounds per contender ({', '.join(ROUNDED)}): more rounds, a tighter median ratio")
    args = parser.parse_args(argv)
    names = args.names or list(BENCHMARKS)
    if args.rounds is not None:
        if args.rounds < 1:
            parser.error("--rounds must be at least 1")
        if not any(n in ROUNDED for n in names):
            parser.error(f"--rounds applies to {', '.join(ROUNDED)} only")
    failed = 0
    for name in names:
        extra = {"rounds": args.rounds} if name in ROUNDED and args.rounds else {}
        failed += BENCHMARKS[name](records=args.records, **extra)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
