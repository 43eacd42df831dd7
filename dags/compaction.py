"""Compaction: closed landing hours -> lake zone, hourly and on demand (kafkalake.compaction)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pendulum
from airflow.sdk import DAG, Asset, Param, task

from kafkalake.airflow.dag_support import HOUR_PATTERN, fail_without_retry, table_choices
from kafkalake.airflow.operators.spark_submit import KafkalakeSparkSubmitOperator
from kafkalake.config import get_settings

DOC = """
### compaction: small landing files → few large lake files

The streams write many small files per hour (one per micro-batch and partition). This DAG
merges every **closed** hour (the stream's committed progress passed the hour's end plus
`compaction.grace_minutes`) into `ceil(bytes / target)` files per hour, in the lake zone:

* **prepare** — checks the params (table, hour range, target size) and builds the job's arguments.
* **compact** — one Spark job (`spark_jobs/compact.py`, `spark_default`): per hour
  `repartition(n)` (+ `compaction.cluster_by` / `sort_by`), then **verify** (row count +
  order-independent checksum of source and output must match, or nothing is published and the task fails with
  both figures), then **publish** atomically (one manifest replace). Hours already compacted
  and unchanged are skipped: re-running is a no-op. A run killed at any point is finished or
  rolled back by the next one (journal in `<lake>/_journal/`).
* **report** — logs files/bytes/rows/mean file size before → after and writes a JSON report
  and a PNG histogram of file sizes to `$KAFKALAKE_STATE_DIR/reports/compaction/`; emits
  one Asset per table (`kafkalake://lake/<table>`) for downstream DAGs.

The streaming sink's folder and its `_spark_metadata` are never modified. Read tables with
`kafkalake.lake.read_table(spark, name)`: lake hours ∪ landing hours not yet compacted.

**Manual run:** *Trigger DAG w/ config*: `table` (or all), `hour_from`/`hour_to`
(e.g. `2026-11-24T05:00Z`, inclusive), `target_mb`, `dry_run` (prints the plan only).
**Re-compact a range:** `airflow backfill create --dag-id compaction --from-date … --to-date …`
(each backfill run covers the hour of its logical date; unchanged hours are skipped; the DAG
must be unpaused for the scheduler to run them; `--reprocess-behavior completed` re-runs dates
that already have runs).
Schedule: `KAFKALAKE_COMPACTION_SCHEDULE` (default `@hourly`).
"""

_settings = get_settings()
_tables = table_choices(_settings)
ASSETS = {table: Asset(name=f"lake_{table.replace('.', '_')}", uri=f"kafkalake://lake/{table}") for table in _tables}


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
        if table["name"] in ASSETS:
            context["outlet_events"][ASSETS[table["name"]]].extra = {
                "hours_compacted": (table.get("totals") or {}).get("hours_compacted", 0), "dry_run": table["dry_run"],
            }
    return {"report": str(path), "png": str(png)}


with DAG(
    dag_id="compaction",
    description="Merge small landing files of closed hours into the lake zone (verified, atomic)",
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
        "table": Param("all", type="string", enum=["all", *_tables], description="table to compact (all: every table)"),
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
