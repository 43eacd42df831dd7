"""Local services for development and tests: processes, a KRaft broker, Airflow, the demo."""

from __future__ import annotations

from typing import TYPE_CHECKING

from kafkalake._exports import lazy_exports

if TYPE_CHECKING:
    from kafkalake.platform.processes import ManagedProcess, require_free_ports

_EXPORTS = {
    "ManagedProcess": "processes",
    "require_free_ports": "processes",
}
__all__ = [
    "ManagedProcess",
    "require_free_ports",
]
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
