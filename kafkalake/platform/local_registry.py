"""The schema registry API on this machine: ``kafkalake registry serve`` as a managed process.

Started by ``kafkalake up`` after Kafka (producers need both), stopped by ``kafkalake down``;
ready when ``GET /`` answers Confluent's ``{}``, not after a sleep.
"""

from __future__ import annotations

import json
import os
import sys
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass

from kafkalake.config import Settings
from kafkalake.errors import ServiceError
from kafkalake.platform.processes import ManagedProcess, require_free_ports, service_state

SERVICE = "registry"
START_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class RegistryStatus:
    running: bool
    answering: bool
    pid: int | None
    url: str

    @property
    def state(self) -> str:
        return service_state(self.running, self.answering)


def _process(settings: Settings) -> ManagedProcess:
    return ManagedProcess.for_service(settings, SERVICE)


def answers(settings: Settings, timeout: float = 2.0) -> bool:
    """True when ``GET /`` returns Confluent's ``{}``: the app is up and routing."""
    try:
        with urllib.request.urlopen(f"{settings.registry_url}/", timeout=timeout) as response:
            return response.status == 200 and json.loads(response.read()) == {}
    except (urllib.error.URLError, OSError, ValueError):
        return False


def status(settings: Settings) -> RegistryStatus:
    proc = _process(settings)
    running = bool(proc.pids())
    return RegistryStatus(running=running, answering=answers(settings, timeout=1.5) if running else False,
                          pid=proc.main_pid(), url=settings.registry_url)


def start(settings: Settings, *, on_progress: Callable[[float], None] | None = None) -> RegistryStatus:
    """Start ``kafkalake registry serve`` and wait until it answers; idempotent."""
    proc = _process(settings)
    if proc.pids():
        if answers(settings):
            return status(settings)
        raise ServiceError(
            f"a kafkalake registry API is running but {settings.registry_url} does not answer: "
            f"run `kafkalake down` and `kafkalake up` again (log: {proc.log_file})"
        )
    require_free_ports("registry", [(settings.registry_host, settings.registry_port, "KAFKALAKE_REGISTRY_PORT")])
    env = {**os.environ, **settings.to_env()}
    proc.start([sys.executable, "-m", "kafkalake.cli", "registry", "serve"], env=env, cwd=settings.home)
    proc.wait_ready(lambda: answers(settings, timeout=1.0), timeout=START_TIMEOUT_S,
                    what=f"answering at {settings.registry_url}", on_progress=on_progress)
    return status(settings)


def stop(settings: Settings) -> bool:
    """SIGTERM lets uvicorn finish open requests; True if it was running."""
    return _process(settings).stop(timeout=10)
