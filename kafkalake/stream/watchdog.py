"""The driver's watchdog: supervision that needs no pid, so it works across hosts.

A supervisor (the stream DAG's health task) may run on another host than the driver, where
the driver's pid means nothing. It then judges the driver by what every host sees, the
stream's status file (its heartbeat: every batch and every idle trigger), and to stop a stuck
driver it writes a kill request beside it (``$STATE/streams/<stream>/kill``). This thread,
inside the driver, checks once a second and ends the driver when

* a kill request newer than the driver's start is there (the supervisor's reason is kept), or
* the driver itself made no progress for :data:`SELF_FENCE_FACTOR` times its health window, and
  at least :data:`SELF_FENCE_MIN_S` (no supervisor needed: a driver hung in a batch fences
  itself off its checkpoint; a slow batch — a backlog, a catalog retrying — is not cut short).

Ending the driver: the status says ``failed`` with the reason, one ``error:`` line goes to
stderr, and the process exits with :data:`kafkalake.errors.ExitCode.STALLED`; the spark-submit
JVM that runs this Python driver then exits with the same code (a retried one: the next
driver resumes from the checkpoint). A JVM still there :data:`JVM_GRACE_S` later (hung in its
shutdown) is killed by a small reaper process. The driver lock goes with the process, so the
next driver can start.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kafkalake.errors import ExitCode
from kafkalake.stream.driver import SPARK_SUBMIT_CLASS
from kafkalake.stream.status import FAILED, STOPPED, StatusWriter

log = logging.getLogger(__name__)

#: the driver fences itself after this many health windows without progress (the supervisor
#: acts after one: it is the usual path; this one covers a supervisor that is gone)
SELF_FENCE_FACTOR = 2.0
#: ... and never before this long without progress
SELF_FENCE_MIN_S = 600.0
#: seconds the spark-submit JVM gets to end after its Python driver did
JVM_GRACE_S = 60.0
#: seconds between looks
EVERY_S = 1.0

def read_kill_request(path: Path) -> dict[str, Any] | None:
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) else None


class Watchdog(threading.Thread):
    """Ends the driver on a kill request or when it has been stuck too long (see the module)."""

    def __init__(self, *, stream: str, kill_file: Path, status: StatusWriter, window_s: float, startup_grace_s: float,
                 exit_process: Callable[[int], None] = os._exit, every_s: float = EVERY_S) -> None:
        super().__init__(daemon=True, name=f"kafkalake-watchdog-{stream}")
        self.stream, self.kill_file, self.status = stream, kill_file, status
        self.window_s, self.startup_grace_s = window_s, startup_grace_s
        self.exit_process, self.every_s = exit_process, every_s
        self.started = time.time()
        self._stop = threading.Event()

    def stop(self) -> None:
        self._stop.set()

    def run(self) -> None:
        while not self._stop.wait(self.every_s):
            reason = self.verdict(time.time())
            if reason is not None:
                self.end_driver(reason)
                return

    def verdict(self, now: float) -> str | None:
        """Why the driver must end now, or None."""
        request = read_kill_request(self.kill_file)
        if request is not None and float(request.get("requested") or 0) >= self.started - 1.0:
            return f"its supervisor asked it to end: {request.get('reason') or 'no reason given'}"
        if self.status.doc.get("state") == STOPPED:
            return None
        last = self.status.doc.get("last_progress_epoch")
        since = float(last) if last is not None else self.started + self.startup_grace_s
        idle, limit = now - since, max(SELF_FENCE_FACTOR * self.window_s, SELF_FENCE_MIN_S)
        if idle > limit:
            return (f"no progress for {idle:.0f}s (the limit: {limit:g}s, {SELF_FENCE_FACTOR:g}x its health window of "
                    f"{self.window_s:g}s, at least {SELF_FENCE_MIN_S:g}s): the driver ends itself, so no stuck "
                    "driver holds the checkpoint")
        return None

    def end_driver(self, reason: str) -> None:
        line = f"error: stream {self.stream!r} ended by its watchdog: {reason}; it resumes from its checkpoint"
        try:
            self.status.set_state(FAILED, error=line.removeprefix("error: "))
        except Exception as exc:  # the status store is gone too: the line and the exit still say it
            log.warning("watchdog: cannot write the status: %s", exc)
        print(line, file=sys.stderr, flush=True)
        _reap_spark_submit_later(JVM_GRACE_S)
        self.exit_process(int(ExitCode.STALLED))


#: what the reaper runs: SIGKILL the JVM if it is still the same spark-submit after the grace
_REAPER = """
import os, signal, sys, time
pid, grace, marker = int(sys.argv[1]), float(sys.argv[2]), sys.argv[3]
time.sleep(grace)
try:
    if marker in open(f"/proc/{pid}/cmdline", "rb").read().decode(errors="replace"):
        os.kill(pid, signal.SIGKILL)
except OSError:
    pass
"""


def _reap_spark_submit_later(grace: float) -> None:
    """If the parent is the spark-submit JVM (client and local mode), SIGKILL it after
    ``grace`` s unless it has ended by then (from a process of its own: this one exits now)."""
    import subprocess

    parent = os.getppid()
    try:
        cmdline = Path(f"/proc/{parent}/cmdline").read_bytes().decode(errors="replace")
    except OSError:
        return
    if SPARK_SUBMIT_CLASS in cmdline:
        subprocess.Popen([sys.executable, "-c", _REAPER, str(parent), str(grace), SPARK_SUBMIT_CLASS],
                         start_new_session=True, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL)
