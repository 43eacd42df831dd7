"""Backfill: replace whole closed hours of a stream's tables from Kafka, verified, one commit per table."""

from __future__ import annotations

from typing import TYPE_CHECKING

from kafkalake._exports import lazy_exports

if TYPE_CHECKING:
    from kafkalake.backfill.plan import BackfillPlan, plan_backfill
    from kafkalake.backfill.request import BackfillError, BackfillRequest, BackfillVerificationError, parse_request
    from kafkalake.backfill.run import run_backfill
    from kafkalake.backfill.verify import load_report, report_dir, summary_lines, verify_report

_EXPORTS = {
    "BackfillError": "request",
    "BackfillRequest": "request",
    "BackfillVerificationError": "request",
    "parse_request": "request",
    "BackfillPlan": "plan",
    "plan_backfill": "plan",
    "run_backfill": "run",
    "load_report": "verify",
    "report_dir": "verify",
    "summary_lines": "verify",
    "verify_report": "verify",
}
__all__ = [
    "BackfillError",
    "BackfillPlan",
    "BackfillRequest",
    "BackfillVerificationError",
    "load_report",
    "parse_request",
    "plan_backfill",
    "report_dir",
    "run_backfill",
    "summary_lines",
    "verify_report",
]
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
