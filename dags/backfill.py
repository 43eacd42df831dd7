"""Backfill: replace whole closed hours of a table and its quarantine table from Kafka (kafkalake.backfill)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pendulum
from airflow.sdk import DAG, Param, task

from kafkalake.airflow.dag_support import HOUR_PATTERN, fail_without_retry, table_choices
from kafkalake.airflow.operators.spark_submit import KafkalakeSparkSubmitOperator
from kafkalake.config import get_settings

DOC = """
### backfill: replace whole hours of a table from Kafka

For hours a table has wrong or incomplete (deleted or lost data files, a stream outage, a decode
fix). **Trigger DAG w/ config**; the form checks the params:

* `table` — an Iceberg table of streams.yaml (`fridge`, or `fridge_avro` for a stream's Avro
  table). Its stream's quarantine table (`fridge_quarantine`) is backfilled for the same hours.
* `start`, `end` — ISO timestamps on whole hours, UTC, **end exclusive**:
  `2026-11-24T05:00Z` .. `2026-11-24T07:00Z` replaces hours 05 and 06.
* `starting_offsets`, `ending_offsets` — optional, Kafka by offsets:
  `{"fridge-events": {"0": 1200, "1": 1180}}` (-2 earliest / -1 latest). The range must cover
  the hours completely on every partition: a backfill never publishes part of an hour.
* `dry_run` — **on by default**: prints the plan (hours, records per hour from Kafka's time
  index, the rows the tables hold now, from their metadata) and changes nothing. Untick it to run.

Tasks: **prepare** checks the params against the stream, Kafka and the tables and refuses, in
one line, hours still open to the stream (its watermark minus `compaction.grace_minutes`),
hours Kafka no longer holds completely (retention), offsets that do not cover the hours;
**backfill** (`spark_jobs/backfill.py`, `spark_default`) reads Kafka with
`startingTimestamp`/`endingTimestamp` (or offsets), decodes with the stream's own transform,
checks before writing anything that, per hour, `table rows + quarantine rows == Kafka offsets`
with every (topic, partition, offset) once, then replaces the hours of each table in one Iceberg
commit: written to a branch, verified per hour (row count + checksum), cherry-picked onto
`main`. Hours whose rows are already exactly these are left alone; when none changed, no commit
is made, so running the same backfill twice changes nothing. A run killed midway leaves `main`
as it was; the next run drops the branch it left. **verify** asks Kafka again and reads the
tables' metadata, checking `rows + quarantined == offsets in range` for every hour.
CLI: `kafkalake backfill TABLE --start … --end …`.
"""

_settings = get_settings()
_tables = table_choices(_settings)


def _offsets(description: str) -> Param:
    """Optional ``{"topic": {"partition": offset}}`` (the job checks -2/-1 and the coverage)."""
    per_topic = {"type": "object", "minProperties": 1, "propertyNames": {"pattern": r"^\d+$"},
                 "additionalProperties": {"type": "integer", "minimum": -2}}
    return Param(None, type=["null", "object"], additionalProperties=per_topic, description=description)


@task(task_id="prepare")
def prepare(**context: Any) -> dict[str, object]:
    """Params -> job arguments, checked against the stream, Kafka and the tables; a refusal is one
    line and fails the run at once (no retry: the same params would be refused again)."""
    from kafkalake.backfill.verify import dag_job_args

    with fail_without_retry("backfill refused: "):
        return dag_job_args(get_settings(), dict(context["params"]), run_id=context["dag_run"].run_id)


@task(task_id="verify")
def verify(plan: dict[str, object]) -> dict[str, object]:
    """rows + quarantined == Kafka offsets in range, per hour (asked from Kafka again)."""
    from kafkalake.backfill.request import BackfillVerificationError
    from kafkalake.backfill.verify import load_report, summary_lines, verify_report

    run = load_report(str(plan["report"]))
    for line in summary_lines(run):
        print(line)
    with fail_without_retry(errors=(BackfillVerificationError,)):
        lines = verify_report(get_settings(), run)
    for line in lines:
        print(line)
    return {"report": plan["report"], "run_id": run.get("run_id"), "dry_run": run.get("dry_run"),
            "hours": [h["hour"] for h in run.get("hours", [])]}


with DAG(
    dag_id="backfill",
    description="Replace whole closed hours of a table from Kafka (verified, one Iceberg commit per table)",
    doc_md=DOC,
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    render_template_as_native_obj=True,
    tags=["kafkalake", "backfill", "lake", "iceberg"],
    default_args={
        "owner": "kafkalake",
        "retries": 1,
        "retry_delay": timedelta(minutes=1),
    },
    params={
        "table": Param(_tables[0] if _tables else "", type="string", enum=_tables,
                       description="table to backfill, e.g. fridge or fridge_avro (its quarantine goes with it)"),
        "start": Param(type="string", pattern=HOUR_PATTERN,
                       description="first hour replaced, UTC, on a whole hour, e.g. 2026-11-24T05:00Z"),
        "end": Param(type="string", pattern=HOUR_PATTERN,
                     description="end of the range, exclusive, e.g. 2026-11-24T07:00Z (= hours 05 and 06)"),
        "starting_offsets": _offsets('optional, Kafka by offsets: {"topic": {"0": first}} (-2 earliest)'),
        "ending_offsets": _offsets('optional: {"topic": {"0": end}}, exclusive (-1 latest)'),
        "dry_run": Param(True, type="boolean", description="print the plan, change nothing (untick to run)"),
    },
) as dag:
    plan = prepare()
    backfill = KafkalakeSparkSubmitOperator(
        task_id="backfill",
        job="backfill",
        job_args=["{{ ti.xcom_pull(task_ids='prepare')['args'] }}"],
        execution_timeout=timedelta(hours=4),
    )
    plan >> backfill >> verify(plan)
