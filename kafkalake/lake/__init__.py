"""The lake: tables (one per stream and format), their zones, the read path and the publisher."""

from __future__ import annotations

from typing import TYPE_CHECKING

from kafkalake._exports import lazy_exports

if TYPE_CHECKING:
    from kafkalake.lake.landing import committed_files, landing_hours, read_landing
    from kafkalake.lake.manifest import read_manifest
    from kafkalake.lake.publish import CompactionError, Compactor, HourResult, lock_table, recover
    from kafkalake.lake.read import read_table, read_table_arrow, table_files
    from kafkalake.lake.tables import Hour, LakeError, TablePaths, all_tables, resolve_table, table_name, table_paths

_EXPORTS = {
    "Hour": "tables",
    "LakeError": "tables",
    "TablePaths": "tables",
    "all_tables": "tables",
    "resolve_table": "tables",
    "table_name": "tables",
    "table_paths": "tables",
    "read_manifest": "manifest",
    "committed_files": "landing",
    "landing_hours": "landing",
    "read_landing": "landing",
    "read_table": "read",
    "read_table_arrow": "read",
    "table_files": "read",
    "CompactionError": "publish",
    "Compactor": "publish",
    "HourResult": "publish",
    "lock_table": "publish",
    "recover": "publish",
}
__all__ = [
    "CompactionError",
    "Compactor",
    "Hour",
    "HourResult",
    "LakeError",
    "TablePaths",
    "all_tables",
    "committed_files",
    "landing_hours",
    "lock_table",
    "read_landing",
    "read_manifest",
    "read_table",
    "read_table_arrow",
    "recover",
    "resolve_table",
    "table_files",
    "table_name",
    "table_paths",
]
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
