"""Find, stop and kill a stream's driver process.

A stop is first asked for (the stop file, honoured at a batch boundary); a driver that
does not react is signalled: SIGTERM, then SIGKILL after a grace.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kafkalake._files import write_json_atomic
from kafkalake.config import Settings
from kafkalake.stream.config import StreamConfig, stream_paths

if TYPE_CHECKING:
    import psutil


def request_stop(settings: Settings, stream: StreamConfig) -> Path:
    """Ask a running driver to stop at the next batch boundary (the driver removes the file)."""
    paths = stream_paths(settings, stream)
    write_json_atomic(paths.stop_file, {"requested": time.time()})
    return paths.stop_file


def request_kill(settings: Settings, stream: StreamConfig, reason: str) -> Path:
    """Ask the running driver to end itself now, wherever it runs: its watchdog
    (:mod:`kafkalake.stream.watchdog`) obeys within a second. What a supervisor on another
    host does instead of signalling a pid."""
    paths = stream_paths(settings, stream)
    write_json_atomic(paths.kill_file, {"requested": time.time(), "reason": reason})
    return paths.kill_file


SPARK_SUBMIT_CLASS = "org.apache.spark.deploy.SparkSubmit"


def _alive(proc: psutil.Process) -> bool:
    import psutil

    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def driver_processes(doc: dict[str, Any] | None, stream: str) -> list[psutil.Process]:
    """The live processes of the stream's driver named by a status document, or [].

    The status ``pid`` is the Python driver (``spark_jobs/stream_ingest.py <stream>``); in
    client/local mode its parent is the spark-submit JVM that holds the queries, and that
    JVM's children are the Python workers. A pid that is not such a driver (the file is
    stale and the pid was reused) yields [].
    """
    import psutil

    pid = (doc or {}).get("pid")
    if not isinstance(pid, int):
        return []
    try:
        proc = psutil.Process(pid)
        cmdline = proc.cmdline()
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return []
    is_driver = any(part.endswith("stream_ingest.py") for part in cmdline) and stream in cmdline
    if not is_driver or not _alive(proc):
        return []
    procs = [proc]
    try:
        parent = proc.parent()
        if parent is not None and SPARK_SUBMIT_CLASS in parent.cmdline():
            procs.append(parent)
            procs += [p for p in parent.children(recursive=True) if p.pid != proc.pid]
        else:
            procs += proc.children(recursive=True)
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        pass
    return [p for p in procs if _alive(p)]  # a JVM's short-lived children may be zombies


def terminate_driver(procs: list[psutil.Process], *, grace: float, log: Any = None) -> list[int]:
    """SIGTERM (then SIGCONT, so a stopped process handles it), SIGKILL after ``grace`` s.

    Returns the pids signalled. Zombies (dead, not yet reaped by their parent) count as gone.
    """
    import psutil

    signalled = []
    for proc in procs:
        try:
            proc.send_signal(signal.SIGTERM)
            proc.send_signal(signal.SIGCONT)
            signalled.append(proc.pid)
        except psutil.NoSuchProcess:
            continue
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and any(_alive(p) for p in procs):
        time.sleep(0.2)
    left = [p for p in procs if _alive(p)]
    for proc in left:
        if log is not None:
            log.warning("pid %d survived SIGTERM for %.0fs: SIGKILL", proc.pid, grace)
        try:
            proc.kill()
        except psutil.NoSuchProcess:
            continue
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(_alive(p) for p in left):
        time.sleep(0.2)
    return signalled


def pid_alive(pid: int) -> bool:
    """Is a process with this pid running on this host (a zombie counts as gone)?"""
    if pid <= 0:  # kill(0|-1, ...) would address a whole process group / every process
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie still answers kill(0); treat it as gone.
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def wait_for_handover(settings: Settings, stream: StreamConfig, *, timeout_s: float, say: Any = print,
                      poll_s: float = 0.5) -> bool:
    """Wait until no driver holds the stream's checkpoint, for at most ``timeout_s``; True if none does.

    A supervisor's next try can start while its previous one is still being killed (the
    scheduler reset an orphaned task; the old try's driver ends a few seconds later). Started
    at once, the new driver would be refused (``STREAM_BUSY``, final): so the try waits for the
    old driver to let go of the lock and to exit, then starts. A driver that still holds it
    after the wait is another driver, and the new one is refused as before.
    """
    from kafkalake._files import LockHeld, exclusive_lock

    lock_path = stream_paths(settings, stream).driver_lock
    deadline = time.monotonic() + timeout_s
    said = False
    while True:
        try:
            exclusive_lock(lock_path, wait=False).close()
            holder = None
        except LockHeld as held:
            holder = held.holder
        lingering = _lingering_driver(stream, lock_path) if holder is None else None
        if holder is None and lingering is None:
            if said:
                say(f"stream {stream.name}: the previous driver let go of the checkpoint; starting")
            return True
        if time.monotonic() >= deadline:
            return False
        if not said:
            say(f"stream {stream.name}: a driver (pid {holder or lingering or 'unknown'}) still holds or is "
                f"leaving the checkpoint; waiting up to {timeout_s:g} s for it to end (health.handover_seconds)")
            said = True
        time.sleep(poll_s)


def _lingering_driver(stream: StreamConfig, lock_path: Path) -> int | None:
    """The pid of the driver that last held the lock if it is still alive here (it released the
    lock and is exiting), else None."""
    try:
        text = lock_path.read_text().strip()
    except OSError:
        return None
    if not text.isdigit():
        return None
    procs = driver_processes({"pid": int(text)}, stream.name)
    return procs[0].pid if procs else None
