"""Schema migration: check, register, evolve what is stored, roll the streams."""

from __future__ import annotations

from typing import TYPE_CHECKING

from kafkalake._exports import lazy_exports

if TYPE_CHECKING:
    from kafkalake.migration.rollout import (
        MigrationError,
        MigrationRequest,
        check,
        parse_request,
        register,
        roll_streams,
        verify,
    )

_EXPORTS = {
    "MigrationError": "rollout",
    "MigrationRequest": "rollout",
    "check": "rollout",
    "parse_request": "rollout",
    "register": "rollout",
    "roll_streams": "rollout",
    "verify": "rollout",
}
__all__ = [
    "MigrationError",
    "MigrationRequest",
    "check",
    "parse_request",
    "register",
    "roll_streams",
    "verify",
]
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
