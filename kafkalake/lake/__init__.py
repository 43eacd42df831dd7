"""The lake: the streams' Iceberg tables, their hours, and verified hour rewrites."""

from __future__ import annotations

from typing import TYPE_CHECKING

from kafkalake._exports import lazy_exports

if TYPE_CHECKING:
    from kafkalake.lake.rewrite import (
        Rewrite,
        VerifyError,
        drop_stale_branches,
        hours_filter,
        replace_hours,
        table_checksum,
    )
    from kafkalake.lake.tables import (
        Hour,
        LakeError,
        TableRef,
        all_tables,
        resolve_table,
        stream_tables,
        table_name,
        table_names,
    )

_EXPORTS = {
    "Hour": "tables",
    "LakeError": "tables",
    "TableRef": "tables",
    "all_tables": "tables",
    "resolve_table": "tables",
    "stream_tables": "tables",
    "table_name": "tables",
    "table_names": "tables",
    "Rewrite": "rewrite",
    "VerifyError": "rewrite",
    "drop_stale_branches": "rewrite",
    "hours_filter": "rewrite",
    "replace_hours": "rewrite",
    "table_checksum": "rewrite",
}
__all__ = [
    "Hour",
    "LakeError",
    "Rewrite",
    "TableRef",
    "VerifyError",
    "all_tables",
    "drop_stale_branches",
    "hours_filter",
    "replace_hours",
    "resolve_table",
    "stream_tables",
    "table_checksum",
    "table_name",
    "table_names",
]
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
