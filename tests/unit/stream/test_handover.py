"""A supervisor's new try waits for the previous driver to let go of the checkpoint lock (a real
``flock`` held by a child process), and gives up after its timeout."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from kafkalake.config import Settings
from kafkalake.stream.config import StreamConfigError, get_stream, load_streams, stream_paths
from kafkalake.stream.driver import wait_for_handover

HOLDER = """
import sys, time
from pathlib import Path
from kafkalake.stream.job import acquire_driver_lock
lock = acquire_driver_lock(Path(sys.argv[1]), "s")
print("held", flush=True)
time.sleep(float(sys.argv[2]))
"""


def _settings(tmp_path: Path, health: dict | None = None) -> Settings:
    streams = tmp_path / "streams.yaml"
    streams.write_text(json.dumps({"streams": [{"name": "s", "topics": ["t"], "subject": "fridge",
                                                **({"health": health} if health else {})}]}))
    return Settings.from_env({"KAFKALAKE_STATE_DIR": str(tmp_path / "state"), "KAFKALAKE_STREAMS_FILE": str(streams)})


def _hold(lock: Path, seconds: float) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(lock), str(seconds)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
    return proc


def test_a_free_checkpoint_starts_at_once(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    said: list[str] = []
    started = time.monotonic()
    assert wait_for_handover(settings, get_stream(settings, "s"), timeout_s=30, say=said.append)
    assert time.monotonic() - started < 1 and said == []


def test_the_new_try_starts_once_the_previous_driver_let_go(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    stream = get_stream(settings, "s")
    holder = _hold(stream_paths(settings, stream).driver_lock, 2)
    said: list[str] = []
    started = time.monotonic()
    try:
        assert wait_for_handover(settings, stream, timeout_s=30, say=said.append)
    finally:
        holder.kill()
    assert 1 < time.monotonic() - started < 20
    assert f"a driver (pid {holder.pid}) still holds or is leaving the checkpoint; waiting up to 30 s" in said[0]
    assert "let go of the checkpoint" in said[-1]


def test_a_driver_that_keeps_the_checkpoint_is_left_to_refuse_the_new_one(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    stream = get_stream(settings, "s")
    holder = _hold(stream_paths(settings, stream).driver_lock, 60)
    try:
        started = time.monotonic()
        assert not wait_for_handover(settings, stream, timeout_s=1.5, say=lambda _line: None)
        assert 1.4 < time.monotonic() - started < 10
    finally:
        holder.kill()


def test_handover_seconds_is_read_from_streams_yaml_and_checked(tmp_path: Path) -> None:
    settings = _settings(tmp_path, {"handover_seconds": 7})
    assert get_stream(settings, "s").health.handover_seconds == 7
    with pytest.raises(StreamConfigError, match=r"health.handover_seconds must be a whole number >= 0, not 'soon'"):
        load_streams(_settings(tmp_path, {"handover_seconds": "soon"}).streams_file)
