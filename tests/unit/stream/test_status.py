"""progress_summary on progress documents shaped as Spark writes them (``StreamingQueryProgress.json``)."""

from __future__ import annotations

import json
from typing import Any

from kafkalake.stream.status import progress_summary


def progress(**fields: Any) -> dict[str, Any]:
    """A Kafka-sourced batch as Spark 4 serialises it (offsets as JSON objects, one source)."""
    doc = {
        "id": "5b0b6a0e-0000-4000-8000-000000000001", "runId": "5b0b6a0e-0000-4000-8000-000000000002",
        "name": "fridge_parquet", "timestamp": "2026-11-30T11:00:00.000Z", "batchId": 3, "batchDuration": 812,
        "numInputRows": 200, "inputRowsPerSecond": 40.0, "processedRowsPerSecond": 246.3054,
        "durationMs": {"addBatch": 700, "triggerExecution": 812}, "stateOperators": [],
        "sources": [{
            "description": "KafkaV2[Subscribe[fridge]]",
            "startOffset": {"fridge": {"0": 100, "1": 90}},
            "endOffset": {"fridge": {"0": 200, "1": 190}},
            "latestOffset": {"fridge": {"0": 250, "1": 190}},
            "numInputRows": 200,
        }],
        "sink": {"description": "FileSink[/lake/landing]", "numOutputRows": -1},
    }
    doc.update(fields)
    return json.loads(json.dumps(doc))


def test_a_batch_gives_its_rows_rate_duration_ranges_and_lag_per_partition() -> None:
    summary = progress_summary(progress())
    assert summary["batch_id"] == 3 and summary["input_rows"] == 200
    assert summary["rows_per_second"] == 246.3 and summary["batch_duration_ms"] == 812
    assert summary["offset_ranges"] == {"fridge-0": [100, 200], "fridge-1": [90, 190]}
    assert summary["offsets_behind_latest"] == {"fridge-0": 50, "fridge-1": 0} and summary["lag"] == 50
    assert summary["progress_time"] == "2026-11-30T11:00:00.000Z"
    assert summary["durations_ms"] == {"addBatch": 700, "triggerExecution": 812}


def test_a_rate_spark_leaves_out_reads_as_zero() -> None:
    # Spark writes no key for a rate that is NaN or infinite (a batch of no rows, or of no time)
    doc = progress(numInputRows=0)
    del doc["processedRowsPerSecond"], doc["inputRowsPerSecond"]
    summary = progress_summary(doc)
    assert summary["rows_per_second"] == 0.0 and summary["input_rows"] == 0


def test_offsets_given_as_json_strings_and_a_source_without_latest_offset_count_no_lag() -> None:
    source = {"startOffset": json.dumps({"t": {"0": 5}}), "endOffset": json.dumps({"t": {"0": 9}})}
    doc = progress(sources=[source])
    del doc["batchDuration"]  # older progress documents: the trigger's duration stands in
    summary = progress_summary(doc)
    assert summary["offset_ranges"] == {"t-0": [5, 9]} and summary["lag"] == 0
    assert summary["batch_duration_ms"] == 812


def test_an_idle_query_is_caught_up_even_before_its_first_batch(tmp_path) -> None:
    """A driver resuming a caught-up checkpoint only idles: it reports lag 0, not an unknown lag."""
    from kafkalake.stream.status import StatusWriter, read_status

    writer = StatusWriter(stream="fridge", path=tmp_path / "status.json", trigger_seconds=2)
    writer.on_idle("fridge")
    doc = read_status(tmp_path / "status.json")
    assert doc["state"] == "running" and doc["lag"] == 0 and doc["queries"]["fridge"]["lag"] == 0
    writer.on_progress("fridge", progress_summary(progress()))  # data arrives: its lag counts again
    assert read_status(tmp_path / "status.json")["lag"] == 50
    writer.on_idle("fridge")
    assert read_status(tmp_path / "status.json")["lag"] == 0
