"""Compaction: closed hours of every Iceberg table -> few large files, hourly and on demand (kafkalake.compaction)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pendulum
from airflow.sdk import DAG, Asset, Param, task

from kafkalake.airflow.dag_support import HOUR_PATTERN, fail_without_retry, table_choices
from kafkalake.airflow.operators.spark_submit import KafkalakeSparkSubmitOperator
from kafkalake.config import get_settings
from kafkalake.lake.tables import table_names
from kafkalake.stream.config import load_streams

DOC = """
### compaction: many small files per hour → few large ones, in each Iceberg table

A stream commits a few small files per hour and micro-batch (one per Kafka partition). This
DAG rewrites every **closed** hour (the stream's committed progress passed the hour's end plus
`compaction.grace_minutes`) of each table — `fridge`, `fridge_avro`, `fridge_quarantine` — into
`max(1, ceil(bytes / target))` files:

* **prepare** — checks the params (table, hour range, target size) and builds the job's arguments.
* **compact** — one Spark job (`spark_jobs/compact.py`, `spark_default`). Per table: plan from
  the current snapshot (files, bytes, rows per hour; an hour with no more files than its bytes
  need is skipped, so re-running is a no-op); read the planned hours at that snapshot, each
  in as many tasks as it gets files (Iceberg's bin-packing split, no shuffle; +
  `compaction.cluster_by` / `sort_by`); write them to a branch
  `kafkalake_compaction_…`, **verify** row count + order-independent checksum per hour against
  the source (a mismatch publishes nothing and fails the task with both figures), then
  **publish** with one cherry-pick onto `main` — one commit per table. Iceberg refuses the
  commit if a file was added to one of those hours meanwhile; the stream's appends to other
  hours go on beside it. A run killed at any point leaves `main` at its old or its new
  snapshot; the next run drops the branch it left and removes files no snapshot references
  once they are older than `compaction.orphan_grace_minutes` (a sweep of the whole table, run
  at once after such a recovery and otherwise every `compaction.orphan_sweep_hours`).
* **report** — logs files/bytes/rows/mean file size before → after, writes a JSON report and
  a PNG histogram of file sizes to `$KAFKALAKE_STATE_DIR/reports/compaction/`; emits one Asset
  per table (`kafkalake://lake/<table>`) for downstream DAGs.

Readers see every row exactly once throughout: Spark SQL, pyiceberg, any Iceberg engine read
`<catalog>.<namespace>.<table>`; time travel reaches the files before a rewrite until the
stream's housekeeping expires that snapshot.

**Manual run:** *Trigger DAG w/ config*: `table` (or all), `hour_from`/`hour_to`
(e.g. `2026-11-24T05:00Z`, inclusive), `target_mb`, `dry_run` (prints the plan only).
**Re-compact a range:** `airflow backfill create --dag-id compaction --from-date … --to-date …`
(each backfill run covers the hour of its logical date; compacted hours are skipped; the DAG
must be unpaused for the scheduler to run them).
Schedule: `KAFKALAKE_COMPACTION_SCHEDULE` (default `@hourly`).
"""

_settings = get_settings()
_tables = table_choices(_settings)
#: the param's choices: the data tables and the quarantine tables
_choices = table_names(load_streams(_settings.streams_file).values(), quarantine=True)
ASSETS = {table: Asset(name=f"lake_{table}", uri=f"kafkalake://lake/{table}") for table in _tables}


@task(task_id="prepare")
def prepare(**context: Any) -> dict[str, object]:
    """Params -> job arguments; a bad param fails here with one line."""
    from kafkalake.compaction.run import dag_job_args

    dag_run = context["dag_run"]
    with fail_without_retry():
        plan = dag_job_args(
            get_settings(), dict(context["params"]), run_id=dag_run.run_id, run_type=dag_run.run_type,
            interval=(context.get("data_interval_start"), context.get("data_interval_end")),
        )
    print(f"compacting {plan['tables']} hours {plan['hours'][0] or 'oldest'} .. {plan['hours'][1] or 'newest closed'}")
    return plan


@task(task_id="report", outlets=list(ASSETS.values()))
def report(plan: dict[str, object], **context: Any) -> dict[str, object]:
    """Log before/after figures; PNG histogram beside the JSON report; Asset events per table."""
    from pathlib import Path

    from kafkalake.compaction import report as compaction_report

    path = Path(str(plan["report"]))
    run = compaction_report.load(path)
    for line in compaction_report.summary_lines(run):
        print(line)
    png = compaction_report.render_png(run, path.with_suffix(".png"))
    print(f"report: {path}\nhistogram: {png}")
    for table in run["tables"]:
        if table["table"] in ASSETS:
            context["outlet_events"][ASSETS[table["table"]]].extra = {
                "hours_compacted": (table.get("totals") or {}).get("hours_compacted", 0), "dry_run": table["dry_run"],
            }
    return {"report": str(path), "png": str(png)}


with DAG(
    dag_id="compaction",
    description="Merge the small files of closed hours of each Iceberg table (verified, one commit per table)",
    doc_md=DOC,
    schedule=_settings.compaction_schedule,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    render_template_as_native_obj=True,
    tags=["kafkalake", "compaction", "lake"],
    default_args={
        "owner": "kafkalake",
        "retries": 2,
        "retry_delay": timedelta(minutes=1),
        "retry_exponential_backoff": 2.0,
    },
    params={
        "table": Param("all", type="string", enum=["all", *_choices],
                       description="table to compact (all: every table)"),
        "hour_from": Param(None, type=["null", "string"], pattern=HOUR_PATTERN,
                           description="first hour, UTC, e.g. 2026-11-24T05:00Z (empty: the oldest)"),
        "hour_to": Param(None, type=["null", "string"], pattern=HOUR_PATTERN,
                         description="last hour, inclusive (empty: the newest closed hour)"),
        "target_mb": Param(None, type=["null", "integer"], minimum=1, maximum=4096,
                           description="target file size in MiB (empty: the table's compaction.target_file_mb)"),
        "dry_run": Param(False, type="boolean", description="print the plan, change nothing"),
    },
) as dag:
    plan = prepare()
    compact = KafkalakeSparkSubmitOperator(
        task_id="compact",
        job="compact",
        job_args=["{{ ti.xcom_pull(task_ids='prepare')['args'] }}"],
        execution_timeout=timedelta(hours=2),
    )
    plan >> compact >> report(plan)
