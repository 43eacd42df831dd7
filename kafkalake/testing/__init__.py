"""Test tooling that ships with the package: synthetic tables and named crash points."""

from __future__ import annotations

from typing import TYPE_CHECKING

from kafkalake._exports import lazy_exports

if TYPE_CHECKING:
    from kafkalake.testing.faults import FAULT_ENV, crash_point

_EXPORTS = {
    "FAULT_ENV": "faults",
    "crash_point": "faults",
}
__all__ = [
    "FAULT_ENV",
    "crash_point",
]
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
