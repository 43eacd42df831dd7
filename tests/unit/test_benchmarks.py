"""The benchmarks' own arithmetic and arguments (the benchmarks themselves run with ``make bench``)."""

from __future__ import annotations

import math
import statistics

import pytest

from benchmarks.__main__ import main as bench_main
from benchmarks.ingest_bench import mean_ratio_interval


def test_the_interval_brackets_the_geometric_mean_of_the_paired_ratios() -> None:
    ratios = [0.98, 0.80, 0.93, 0.87, 1.15, 1.04, 0.89, 1.08, 0.71, 0.99, 0.90, 0.93, 0.98, 0.81, 0.91]
    interval = mean_ratio_interval(ratios)
    assert interval is not None
    assert interval["low"] < interval["mean"] < interval["high"]
    assert interval["mean"] == pytest.approx(math.exp(statistics.fmean(map(math.log, ratios))), abs=0.001)
    assert 0.85 < interval["low"] < 0.9 and 0.95 < interval["high"] < 1.0
    assert mean_ratio_interval(ratios) == interval  # a fixed seed: the same run, the same figures


def test_identical_rounds_leave_no_width_and_too_few_rounds_give_none() -> None:
    assert mean_ratio_interval([0.9] * 6) == {"mean": 0.9, "low": 0.9, "high": 0.9}
    assert mean_ratio_interval([0.9, 1.0, 0.95]) is None


@pytest.mark.parametrize("argv, message", [
    (["ingest", "--rounds", "0"], "--rounds must be at least 1"),
    (["latency", "--rounds", "3"], "--rounds applies to producer, ingest, compaction, scale only"),
])
def test_bad_rounds_are_refused_before_anything_runs(argv: list[str], message: str,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        bench_main(argv)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err
