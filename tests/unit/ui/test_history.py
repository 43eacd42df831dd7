"""The batch history next to the status file: bounded, replaced atomically, kept across restarts."""

from __future__ import annotations

import json
from pathlib import Path

from kafkalake.stream.status import BatchHistory, StatusWriter, history_file, read_history


def summary(batch: int, rows: int = 10, lag: int = 3) -> dict:
    return {"batch_id": batch, "input_rows": rows, "rows_per_second": 2.5 * rows, "lag": lag,
            "batch_duration_ms": 400}


def test_the_ring_keeps_the_last_n_batches_of_the_window(tmp_path: Path) -> None:
    history = BatchHistory(tmp_path / "history.jsonl", window_s=100.0, max_batches=5)
    for b in range(8):
        history.add("q", summary(b), now=1000.0 + b)
    assert [e["batch"] for e in read_history(tmp_path / "history.jsonl")] == [3, 4, 5, 6, 7]
    history.add("q", summary(8), now=1200.0)  # 200 s later: the older batches left the window
    assert [e["batch"] for e in read_history(tmp_path / "history.jsonl")] == [8]


def test_an_entry_has_what_the_chart_needs(tmp_path: Path) -> None:
    BatchHistory(tmp_path / "h.jsonl").add("fridge", summary(4, rows=100, lag=7), now=1.5)
    (entry,) = [json.loads(line) for line in (tmp_path / "h.jsonl").read_text().splitlines()]
    assert entry == {"t": 1.5, "query": "fridge", "batch": 4, "rows": 100, "rps": 250.0, "lag": 7, "ms": 400}


def test_a_restarted_driver_carries_on_with_its_predecessors_batches(tmp_path: Path) -> None:
    status = tmp_path / "status.json"
    first = StatusWriter(stream="fridge", path=status, trigger_seconds=5.0)
    first.on_progress("fridge", {**summary(0), "offsets_behind_latest": {}})
    first.on_progress("fridge", {**summary(1), "offsets_behind_latest": {}})
    second = StatusWriter(stream="fridge", path=status, trigger_seconds=5.0)
    second.on_progress("fridge", {**summary(2), "offsets_behind_latest": {}})
    assert [e["batch"] for e in read_history(history_file(status))] == [0, 1, 2]
    assert not list(tmp_path.glob(".*.tmp"))  # replaced atomically: no temp file left


def test_a_damaged_line_is_skipped_and_a_missing_file_is_empty(tmp_path: Path) -> None:
    path = tmp_path / "history.jsonl"
    assert read_history(path) == []
    path.write_text('{"t": 5, "batch": 1}\nnot json\n[1]\n{"t": 9, "batch": 2}\n')
    assert [e["batch"] for e in read_history(path)] == [1, 2]
    assert [e["batch"] for e in read_history(path, window_s=2.0, now=10.0)] == [2]
