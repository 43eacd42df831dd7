"""Schema migration: check, register, evolve the tables, roll the streams."""

from __future__ import annotations

from typing import TYPE_CHECKING

from kafkalake._exports import lazy_exports

if TYPE_CHECKING:
    from kafkalake.migration.evolve import evolve_tables, tables_behind
    from kafkalake.migration.rollout import (
        MigrationError,
        MigrationRequest,
        check,
        parse_request,
        register,
        roll_streams,
    )

_EXPORTS = {
    "MigrationError": "rollout",
    "MigrationRequest": "rollout",
    "check": "rollout",
    "evolve_tables": "evolve",
    "parse_request": "rollout",
    "register": "rollout",
    "roll_streams": "rollout",
    "tables_behind": "evolve",
}
__all__ = [
    "MigrationError",
    "MigrationRequest",
    "check",
    "evolve_tables",
    "parse_request",
    "register",
    "roll_streams",
    "tables_behind",
]
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
