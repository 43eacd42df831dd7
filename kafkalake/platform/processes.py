"""Start, find and stop the long-running local processes (Kafka broker, Airflow).

Each service runs in a session of its own (``start_new_session``), so its PID is also the id of
its process group and of its session, and everything it forks stays in that session unless it
calls ``setsid`` itself: Airflow's scheduler, api-server, LocalExecutor workers and task
processes (which move to process groups of their own, still inside the session). The PID file
records that PID with its start time; ``stop`` signals the whole session and waits until
nothing of it lives, and never signals a session that a reused PID now leads.

Every process kafkalake starts also carries ``KAFKALAKE_PROC_TAG=<service>@<state_dir>`` in its
environment, and children inherit it: a second way to find processes that left the session.
Only a second way: a process that rewrites its title with setproctitle (Airflow's do)
overwrites the memory ``/proc/<pid>/environ`` reads, and its tag is gone.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from kafkalake._files import write_json_atomic
from kafkalake.config import LOOPBACK
from kafkalake.errors import ServiceError, SetupError
from kafkalake.stream.driver import pid_alive

if TYPE_CHECKING:
    from kafkalake.config import Settings

log = logging.getLogger(__name__)

TAG_VAR = "KAFKALAKE_PROC_TAG"
KILL_WAIT_S = 10.0  # after SIGKILL: how long to wait for the kernel to tear processes down


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


_GONE_STATES = ("Z", "X")  # zombie / dead: exited, only not reaped yet


@dataclass(frozen=True)
class ProcStat:
    """The fields of ``/proc/<pid>/stat`` that tell which session a process belongs to."""

    pid: int
    state: str
    pgid: int  # field 5
    sid: int  # field 6
    start_ticks: int  # field 22: start time, clock ticks after boot (with the PID: unique)

    @property
    def gone(self) -> bool:
        return self.state in _GONE_STATES


def proc_stat(pid: int) -> ProcStat | None:
    """The process's stat line, or None when no process has this PID."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except (OSError, ValueError):
        return None
    fields = text.rsplit(")", 1)[1].split()  # the command name in (...) may hold spaces
    return ProcStat(pid=pid, state=fields[0], pgid=int(fields[2]), sid=int(fields[3]), start_ticks=int(fields[19]))


def live_processes() -> list[ProcStat]:
    """Every process that has not exited, but this one."""
    stats = (proc_stat(int(entry.name)) for entry in Path("/proc").iterdir() if entry.name.isdigit())
    return [st for st in stats if st is not None and not st.gone and st.pid != os.getpid()]


def session_pids(leader: int) -> list[int]:
    """Live processes in the process group or the session ``leader`` (a session leader's PID
    names both); they outlive the leader itself, as orphans re-parented to init."""
    if leader <= 1:  # 0: no session; 1: init's
        return []
    return sorted(st.pid for st in live_processes() if leader in (st.pgid, st.sid))


def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


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


def free_port_run(step: int, count: int, host: str = LOOPBACK) -> int:
    """A free port ``p`` with ``p + step * i`` free for every ``i < count``: the ports a local
    cluster derives from one setting (controllers, a Spark master's web UIs)."""
    for _ in range(50):
        (base,) = free_ports(1, host)
        if base + step * count < 65535 and not any(port_in_use(host, base + step * i) for i in range(count)):
            return base
    raise RuntimeError(f"no run of {count} free ports {step} apart on {host}")


def require_free_ports(service: str, ports: Sequence[tuple[str, int, str]]) -> None:
    """Fail before starting anything when a port is taken; the message names the setting."""
    for host, port, setting in ports:
        if port_in_use(host, port):
            raise SetupError(
                f"{service}: port {host}:{port} is already in use by another process; "
                f"stop that process or choose another port with {setting}"
            )


def service_state(running: bool, ready: bool) -> str:
    """What ``kafkalake status`` says of a service: up, starting/unhealthy (running, not ready) or down."""
    if running and ready:
        return "up"
    return "starting/unhealthy" if running else "down"


@dataclass
class ManagedProcess:
    """A background process in a session of its own, with a PID file and a log file."""

    service: str
    state_dir: Path
    run_dir: Path
    log_file: Path

    @property
    def tag(self) -> str:
        return proc_tag(self.service, self.state_dir)

    @classmethod
    def for_service(cls, settings: Settings, service: str) -> ManagedProcess:
        """The service's process in the state folder of ``settings``, logging to ``<logs>/<service>.log``."""
        return cls(service=service, state_dir=settings.state_dir, run_dir=settings.run_dir,
                   log_file=settings.logs_dir / f"{service}.log")

    @property
    def pid_file(self) -> Path:
        return self.run_dir / f"{self.service}.pid"

    def session(self) -> int | None:
        """Id of the service's session (= its process group, = the PID it started with) while it
        is ours, else None: no PID file, another boot, or the PID now names someone else's.

        The kernel hands out no PID while a process group or session of that id exists, so a live
        leader with the recorded start time, or (the leader gone) processes started after it in
        that session, are the service's: its orphans, which keep the session id.
        """
        try:
            text = self.pid_file.read_text().strip()
        except OSError:
            return None
        try:
            record = json.loads(text)
        except ValueError:
            return None
        if isinstance(record, int):  # a PID file written before sessions were recorded
            return record if record in tagged_pids(self.tag) else None
        try:
            pid, start_ticks, boot = int(record["pid"]), int(record["start_ticks"]), str(record["boot_id"])
        except (KeyError, TypeError, ValueError):
            return None
        if pid <= 1 or boot != _boot_id():
            return None
        leader = proc_stat(pid)
        if leader is not None:  # alive, or a zombie not reaped yet: the PID is still the one we started
            return pid if leader.start_ticks == start_ticks else None
        left = [st for st in live_processes() if pid in (st.pgid, st.sid)]
        return pid if left and all(st.start_ticks >= start_ticks for st in left) else None

    def pids(self) -> list[int]:
        """Live processes of the service: its session's, and any other carrying its tag."""
        sid = self.session()
        in_session = session_pids(sid) if sid is not None else []
        return sorted({*in_session, *(pid for pid in tagged_pids(self.tag) if pid_alive(pid))})

    def main_pid(self) -> int | None:
        """The PID the service was started with, while that process runs."""
        sid = self.session()
        return sid if sid is not None and pid_alive(sid) else None

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
                    start_new_session=True,  # pgid = sid = pid: stop() signals all of it
                )
            except OSError as exc:
                raise SetupError(f"{self.service}: cannot run {argv[0]}: {exc.strerror}") from None
        self._popen = proc
        stat = proc_stat(proc.pid)  # not reaped before we poll it: readable even if it exited
        record = {"pid": proc.pid, "start_ticks": stat.start_ticks if stat else 0, "boot_id": _boot_id()}
        write_json_atomic(self.pid_file, record, indent=None)
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
        """SIGTERM the service's session and every tagged process; after ``timeout`` SIGKILL what
        is left, then wait until nothing of it lives. Idempotent: the PID file goes only then.

        Returns True when something was running.
        """
        sid = self.session()
        running = self.pids()
        if running:
            self._signal_all(sid, signal.SIGTERM)
            if not self._wait_gone(timeout):
                left = self.pids()
                where = f" (session {sid})" if sid is not None else ""
                log.warning("%s: pid %s ignored SIGTERM, sending SIGKILL%s", self.service, _pid_list(left), where)
                self._signal_all(sid, signal.SIGKILL)
                if not self._wait_gone(KILL_WAIT_S):
                    log.error("%s: pid %s still alive after SIGKILL", self.service, _pid_list(self.pids()))
                    return True  # the PID file stays: the next stop tries again
        self.pid_file.unlink(missing_ok=True)
        return bool(running)

    def _signal_all(self, sid: int | None, sig: int) -> None:
        """``sig`` to the session's process groups (the leader's and those its processes made,
        such as Airflow's task processes), then to tagged processes outside the session."""
        groups: set[int] = set()
        if sid is not None:
            groups = {sid} | {st.pgid for st in live_processes() if st.sid == sid}
        for pgid in sorted(groups):
            if pgid > 1:
                try:
                    os.killpg(pgid, sig)
                except (ProcessLookupError, PermissionError):
                    pass
        for pid in tagged_pids(self.tag):
            stat = proc_stat(pid)
            if stat is not None and stat.pgid not in groups:
                _signal(pid, sig)

    def _wait_gone(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while True:
            self._reap()
            if not self.pids():
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.2)

    def _reap(self) -> None:
        """Collect the leader's exit when this process started it (else it stays a zombie)."""
        proc = getattr(self, "_popen", None)
        if proc is not None:
            proc.poll()
            return
        sid = self.session()
        if sid is not None:
            try:  # started by another ManagedProcess of this process (a test fixture): reap it here
                os.waitpid(sid, os.WNOHANG)
            except ChildProcessError:  # not our child
                pass


def _pid_list(pids: Sequence[int], most: int = 8) -> str:
    shown = ", ".join(str(pid) for pid in pids[:most])
    return shown + (f" and {len(pids) - most} more" if len(pids) > most else "")


def _signal(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass
