"""Compaction: closed landing hours -> few large lake files, verified, published atomically."""

from __future__ import annotations

from typing import TYPE_CHECKING

from kafkalake._exports import lazy_exports

if TYPE_CHECKING:
    from kafkalake.compaction.plan import HourPlan, TablePlan, plan_table
    from kafkalake.compaction.run import compact_table, report_dir, run_compaction

_EXPORTS = {
    "HourPlan": "plan",
    "TablePlan": "plan",
    "plan_table": "plan",
    "compact_table": "run",
    "report_dir": "run",
    "run_compaction": "run",
}
__all__ = [
    "HourPlan",
    "TablePlan",
    "compact_table",
    "plan_table",
    "report_dir",
    "run_compaction",
]
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
