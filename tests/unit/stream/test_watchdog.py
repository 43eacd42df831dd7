"""The driver's watchdog decides from its kill file and its own progress (no processes here:
``exit_process`` records instead of exiting)."""

from __future__ import annotations

import json
import time
from pathlib import Path

from kafkalake.errors import ExitCode
from kafkalake.stream.status import StatusWriter, read_status
from kafkalake.stream.watchdog import SELF_FENCE_MIN_S, Watchdog


def watchdog(tmp_path: Path, *, window_s: float = 10.0) -> tuple[Watchdog, list[int]]:
    status = StatusWriter(stream="s", path=tmp_path / "status.json", trigger_seconds=1.0, host="h")
    exits: list[int] = []
    return Watchdog(stream="s", kill_file=tmp_path / "kill", status=status, window_s=window_s,
                    startup_grace_s=30.0, exit_process=exits.append), exits


def test_a_kill_request_for_this_driver_ends_it_with_its_reason(tmp_path: Path, capsys) -> None:
    dog, exits = watchdog(tmp_path)
    assert dog.verdict(time.time()) is None
    (tmp_path / "kill").write_text(json.dumps({"requested": time.time(), "reason": "lag too high"}))
    reason = dog.verdict(time.time())
    assert reason is not None and "lag too high" in reason
    dog.end_driver(reason)
    assert exits == [int(ExitCode.STALLED)]
    doc = read_status(tmp_path / "status.json")
    assert doc["state"] == "failed" and "lag too high" in doc["error"] and doc["host"] == "h"
    assert capsys.readouterr().err.count("error: stream 's' ended by its watchdog") == 1


def test_a_request_older_than_the_driver_is_not_for_it(tmp_path: Path) -> None:
    (tmp_path / "kill").write_text(json.dumps({"requested": time.time() - 3600, "reason": "old"}))
    dog, _ = watchdog(tmp_path)
    assert dog.verdict(time.time()) is None


def test_a_driver_without_progress_fences_itself_after_twice_its_window_and_never_early(tmp_path: Path) -> None:
    dog, _ = watchdog(tmp_path, window_s=400.0)
    dog.status.doc["last_progress_epoch"] = 1000.0
    assert dog.verdict(1000.0 + 799) is None
    assert "no progress for 801s" in (dog.verdict(1000.0 + 801) or "")
    short, _ = watchdog(tmp_path, window_s=3.0)  # a short window still waits SELF_FENCE_MIN_S
    short.status.doc["last_progress_epoch"] = 1000.0
    assert short.verdict(1000.0 + SELF_FENCE_MIN_S - 1) is None
    assert short.verdict(1000.0 + SELF_FENCE_MIN_S + 1) is not None
    short.status.doc["state"] = "stopped"
    assert short.verdict(1000.0 + SELF_FENCE_MIN_S + 1) is None
