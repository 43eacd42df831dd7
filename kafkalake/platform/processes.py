"""Start, find and stop the long-running local processes (Kafka broker, Airflow).

Every process kafkalake starts carries ``KAFKALAKE_PROC_TAG=<service>@<state_dir>`` in its
environment, and children inherit it. Finding processes by that tag instead of trusting PID
files alone means ``kafkalake down`` also reaps grandchildren (Airflow's scheduler, api-server
workers) and never kills an unrelated process that reused a stale PID.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from kafkalake.config import LOOPBACK
from kafkalake.errors import ServiceError, SetupError

log = logging.getLogger(__name__)

TAG_VAR = "KAFKALAKE_PROC_TAG"


def proc_tag(service: str, state_dir: Path) -> str:
    return f"{service}@{state_dir}"


def tagged_pids(tag: str) -> list[int]:
    """PIDs of live processes whose environment holds exactly this tag."""
    needle = f"{TAG_VAR}={tag}".encode()
    pids: list[int] = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes()
        except OSError:
            continue
        if needle in environ.split(b"\0"):
            pids.append(int(entry.name))
    return sorted(pid for pid in pids if pid != os.getpid())


def pid_alive(pid: int) -> bool:
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


def port_in_use(host: str, port: int) -> bool:
    """True when something already listens on host:port (we could not bind it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return True
    return False


def free_ports(count: int, host: str = LOOPBACK) -> list[int]:
    """Ports nobody listens on right now (bound together, so they differ): for a second
    platform beside the demo (tests, benchmarks)."""
    socks = []
    try:
        for _ in range(count):
            sock = socket.socket()
            sock.bind((host, 0))
            socks.append(sock)
        return [sock.getsockname()[1] for sock in socks]
    finally:
        for sock in socks:
            sock.close()


def require_free_ports(service: str, ports: Sequence[tuple[str, int, str]]) -> None:
    """Fail before starting anything when a port is taken; the message names the setting."""
    for host, port, setting in ports:
        if port_in_use(host, port):
            raise SetupError(
                f"{service}: port {host}:{port} is already in use by another process; "
                f"stop that process or choose another port with {setting}"
            )


@dataclass
class ManagedProcess:
    """A tagged background process with a PID file and a log file."""

    service: str
    state_dir: Path
    run_dir: Path
    log_file: Path

    @property
    def tag(self) -> str:
        return proc_tag(self.service, self.state_dir)

    @property
    def pid_file(self) -> Path:
        return self.run_dir / f"{self.service}.pid"

    def pids(self) -> list[int]:
        return [pid for pid in tagged_pids(self.tag) if pid_alive(pid)]

    def main_pid(self) -> int | None:
        try:
            pid = int(self.pid_file.read_text().strip())
        except (OSError, ValueError):
            return None
        return pid if pid in self.pids() else None

    def start(self, argv: Sequence[str], *, env: Mapping[str, str], cwd: Path | None = None) -> int:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        full_env = {**env, TAG_VAR: self.tag}
        with open(self.log_file, "ab") as out:
            try:
                proc = subprocess.Popen(
                    list(argv),
                    env=full_env,
                    cwd=cwd,
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,  # own process group: stop() signals all of it
                )
            except OSError as exc:
                raise SetupError(f"{self.service}: cannot run {argv[0]}: {exc.strerror}") from None
        self.pid_file.write_text(f"{proc.pid}\n")
        self._popen = proc
        return proc.pid

    def exited(self) -> int | None:
        """Exit code of the process this object started, or None while it runs."""
        proc = getattr(self, "_popen", None)
        return None if proc is None else proc.poll()

    def wait_ready(
        self,
        probe: Callable[[], bool],
        *,
        timeout: float,
        what: str,
        on_progress: Callable[[float], None] | None = None,
    ) -> None:
        """Poll ``probe`` until it answers; on early exit or timeout stop everything and raise."""
        deadline = time.monotonic() + timeout
        started = time.monotonic()
        while True:
            code = self.exited()
            if code is not None:
                self.stop(timeout=5)
                raise ServiceError(
                    f"{self.service} exited with code {code} before {what}: "
                    f"{self.last_error_line()} (full log: {self.log_file})"
                )
            if probe():
                return
            if time.monotonic() > deadline:
                self.stop(timeout=10)
                raise ServiceError(
                    f"{self.service} did not {what} within {timeout:.0f}s: "
                    f"{self.last_error_line()} (full log: {self.log_file})"
                )
            if on_progress is not None:
                on_progress(time.monotonic() - started)
            time.sleep(0.5)

    def last_error_line(self) -> str:
        """The most telling line of the log: the last ERROR/Exception line, else the last line."""
        try:
            lines = self.log_file.read_text(errors="replace").splitlines()[-400:]
        except OSError:
            return "no log written"
        for line in reversed(lines):
            if any(word in line for word in ("ERROR", "Exception", "Error:", "error:")):
                return line.strip()[:400]
        return lines[-1].strip()[:400] if lines else "log is empty"

    def stop(self, *, timeout: float = 30.0) -> bool:
        """SIGTERM the process group and every tagged process, then SIGKILL what remains.

        Returns True when something was running.
        """
        pids = self.pids()
        main = self.main_pid()
        if main is not None:
            try:
                os.killpg(main, signal.SIGTERM)
            except (ProcessLookupError, PermissionError):
                pass
        for pid in pids:
            _signal(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.pids():
            self._reap()
            time.sleep(0.2)
        for pid in self.pids():
            log.warning("%s: pid %s ignored SIGTERM, sending SIGKILL", self.service, pid)
            _signal(pid, signal.SIGKILL)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and self.pids():
            self._reap()
            time.sleep(0.1)
        self._reap()
        self.pid_file.unlink(missing_ok=True)
        return bool(pids)

    def _reap(self) -> None:
        proc = getattr(self, "_popen", None)
        if proc is not None:
            proc.poll()


def _signal(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass
