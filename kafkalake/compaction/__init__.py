"""Compaction: the closed hours of each Iceberg table -> few large files, verified, one commit per table."""

from __future__ import annotations

from typing import TYPE_CHECKING

from kafkalake._exports import lazy_exports

if TYPE_CHECKING:
    from kafkalake.compaction.merge import CompactionError, merge_hours
    from kafkalake.compaction.plan import HourPlan, TablePlan, plan_hours, plan_table
    from kafkalake.compaction.run import compact_table, report_dir, run_compaction

_EXPORTS = {
    "CompactionError": "merge",
    "merge_hours": "merge",
    "HourPlan": "plan",
    "TablePlan": "plan",
    "plan_hours": "plan",
    "plan_table": "plan",
    "compact_table": "run",
    "report_dir": "run",
    "run_compaction": "run",
}
__all__ = [
    "CompactionError",
    "HourPlan",
    "TablePlan",
    "compact_table",
    "merge_hours",
    "plan_hours",
    "plan_table",
    "report_dir",
    "run_compaction",
]
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
