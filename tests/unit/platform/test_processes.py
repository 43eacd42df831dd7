"""Stopping a service stops its whole session, and nothing that is not ours.

The service here is a small Python tree shaped like ``airflow standalone``'s: a leader that
ignores SIGTERM, a worker in its process group and one in a group of its own (as Airflow's task
processes), both ignoring SIGTERM and renamed by setproctitle, which wipes their environment tag.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from kafkalake.platform.processes import ManagedProcess, proc_stat, session_pids, tagged_pids
from kafkalake.stream.driver import pid_alive

TREE = r"""
import os, signal, sys, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
for own_group in (False, True):
    if os.fork() == 0:
        if own_group:
            os.setpgid(0, 0)
        import setproctitle
        setproctitle.setproctitle("kafkalake-test worker -- <idle> " + "x" * 4000)  # > argv: wipes environ
        while True:
            time.sleep(1)
if sys.argv[1] == "leader-exits":
    os._exit(0)
while True:
    time.sleep(1)
"""


def _managed(tmp_path: Path) -> ManagedProcess:
    return ManagedProcess(service="tree", state_dir=tmp_path, run_dir=tmp_path / "run", log_file=tmp_path / "tree.log")


def _wait(condition: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


@pytest.fixture
def stranger() -> Iterator[subprocess.Popen[bytes]]:
    """A process in a session of its own that is not kafkalake's."""
    proc = subprocess.Popen(["sleep", "120"], start_new_session=True)
    try:
        yield proc
    finally:
        proc.kill()
        proc.wait()


@pytest.mark.parametrize("mode", ["leader-runs", "leader-exits"])
def test_stop_kills_the_whole_session_even_untagged_orphans(
    tmp_path: Path, mode: str, caplog: pytest.LogCaptureFixture
) -> None:
    svc = _managed(tmp_path)
    pid = svc.start([sys.executable, "-c", TREE, mode], env={"PATH": "/usr/bin:/bin"})
    record = json.loads(svc.pid_file.read_text())
    assert record["pid"] == pid and record["start_ticks"] == proc_stat(pid).start_ticks
    try:
        expected = 3 if mode == "leader-runs" else 2
        _wait(lambda: len(session_pids(pid)) == expected)
        workers = [p for p in session_pids(pid) if p != pid]
        # setproctitle wipes their tag, as it does Airflow's workers': only the session finds them
        _wait(lambda: not set(workers) & set(tagged_pids(svc.tag)))
        stats = [proc_stat(p) for p in workers]
        assert all(st.sid == pid for st in stats)
        assert sorted(st.pgid == pid for st in stats) == [False, True]  # one left the leader's group
        assert set(workers) <= set(svc.pids())
        assert svc.main_pid() == (pid if mode == "leader-runs" else None)

        with caplog.at_level(logging.WARNING):
            assert svc.stop(timeout=1) is True
        assert session_pids(pid) == [] and svc.pids() == []
        assert not any(pid_alive(p) for p in workers)
        assert "ignored SIGTERM, sending SIGKILL" in caplog.text and f"(session {pid})" in caplog.text
        assert not svc.pid_file.exists()
        assert svc.stop(timeout=1) is False  # idempotent
    finally:
        for p in session_pids(pid):
            _kill(p)


def test_a_reused_pid_is_never_signalled(tmp_path: Path, stranger: subprocess.Popen[bytes]) -> None:
    svc = _managed(tmp_path)
    svc.run_dir.mkdir()
    real = json.loads(_record(svc, stranger.pid))
    for record in (
        {**real, "start_ticks": real["start_ticks"] + 1},  # same PID, another process
        {**real, "boot_id": "another-boot"},
        stranger.pid,  # an old PID file (no start time): only a tagged leader counts
    ):
        svc.pid_file.write_text(json.dumps(record) + "\n")
        assert svc.session() is None and svc.pids() == [] and svc.main_pid() is None
        assert svc.stop(timeout=1) is False
        assert stranger.poll() is None
        assert not svc.pid_file.exists()  # nothing of ours runs: the stale file goes
    svc.pid_file.write_text(_record(svc, stranger.pid))
    assert svc.session() == stranger.pid  # the genuine record is recognised


def test_stop_without_a_pid_file_is_a_no_op(tmp_path: Path) -> None:
    assert _managed(tmp_path).stop(timeout=1) is False


def _record(svc: ManagedProcess, pid: int) -> str:
    from kafkalake.platform.processes import _boot_id

    return json.dumps({"pid": pid, "start_ticks": proc_stat(pid).start_ticks, "boot_id": _boot_id()})


def _kill(pid: int) -> None:
    import os
    import signal

    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
