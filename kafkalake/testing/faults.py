"""Test seams: named points where a test makes a process die as ``kill -9`` would.

Production code marks a point with :func:`crash_point` (``"compact:write"``). It costs one
environment lookup and does nothing unless ``KAFKALAKE_FAULT`` names that point, which only
tests set (in the environment of the job they start). Crash recovery is then tested on the
real process, not on a fake. The points are listed in docs/architecture.md, "Test seams".
"""

from __future__ import annotations

import os
import signal

FAULT_ENV = "KAFKALAKE_FAULT"


def crash_point(point: str) -> None:
    """SIGKILL this process here when ``KAFKALAKE_FAULT`` equals ``point`` (tests only)."""
    if os.environ.get(FAULT_ENV) == point:
        os.kill(os.getpid(), signal.SIGKILL)
