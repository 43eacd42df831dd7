"""Schema migration: check, register and roll out a new schema version (kafkalake.migration)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pendulum
from airflow.sdk import DAG, Param, task

from kafkalake.airflow.dag_support import COMPATIBILITY_MODES, SUBJECT_PATTERN, fail_without_retry
from kafkalake.airflow.operators.spark_submit import KafkalakeSparkSubmitOperator

DOC = """
### schema_migration: roll a new schema version out under live traffic

The notebook's fridge fleet: old fridges keep sending v1 while the platform moves to v2 (adds
`temperature`). *Trigger DAG w/ config* with the subject and the new schema's JSON text:

1. **validate** — subject exists, the text is valid JSON / Avro, defaults match their types.
2. **check** — compatibility under the subject's mode (`schemas/<subject>/subject.yaml`) or the
   `compatibility` override; every incompatibility is listed with its location. **A refused
   schema fails here: the registry folder and the lake stay byte-identical, streams keep running.**
3. **register** — atomic and idempotent (re-running with the same schema is a no-op).
4. **roll_streams** (`roll_streams`, default on) — every stream reading the subject stops at a
   batch boundary; its supervisor DAG `stream_<name>` restarts it with the new reader schema,
   from the same checkpoint (nothing lost, nothing twice). Streams that are not running pick the
   new version up at their next start.
5. **migrate** (Spark) — with `migrate_history`, rewrites the lake's hours into the new schema
   with defaults filled (verified and published like compaction); then verifies that the whole
   table reads with one schema and the lake's row counts are unchanged.

`dry_run` stops after the check. Readers: `kafkalake.lake.read_table(spark, table)` returns old
rows with the new fields null (or their default after `migrate_history`).
"""


@task(task_id="validate")
def validate_task(**context: Any) -> dict[str, object]:
    from kafkalake.config import get_settings
    from kafkalake.migration.rollout import lake_row_counts, parse_request, validate

    settings = get_settings()
    with fail_without_retry():
        request = parse_request(dict(context["params"]))
        found = validate(settings, request)
    print(f"{request.subject}: schema valid; latest is v{found['latest']}; streams reading it: "
          f"{', '.join(found['streams']) or 'none'}")
    return {**found, "before": lake_row_counts(settings, request.subject)}


@task(task_id="check")
def check_task(**context: Any) -> dict[str, object]:
    from kafkalake.config import get_settings
    from kafkalake.migration.rollout import check, parse_request

    with fail_without_retry():
        return check(get_settings(), parse_request(dict(context["params"])))


@task.short_circuit(task_id="not_dry_run")
def not_dry_run(**context: Any) -> bool:
    if context["params"].get("dry_run"):
        print("dry run: the schema is valid and compatible; nothing registered")
        return False
    return True


@task(task_id="register")
def register_task(**context: Any) -> dict[str, object]:
    from kafkalake.config import get_settings
    from kafkalake.migration.rollout import parse_request, register

    return register(get_settings(), parse_request(dict(context["params"])))


@task(task_id="roll_streams")
def roll_streams_task(registered: dict[str, object], **context: Any) -> dict[str, str]:
    from kafkalake.config import get_settings
    from kafkalake.migration.rollout import parse_request, roll_streams

    request = parse_request(dict(context["params"]))
    if not request.roll_streams:
        print("roll_streams is off: running streams keep their reader until they restart")
        return {}
    return roll_streams(get_settings(), request.subject, int(registered["version"]))


with DAG(
    dag_id="schema_migration",
    description="Check, register and roll out a new schema version (nothing lost under live traffic)",
    doc_md=DOC,
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    tags=["kafkalake", "schema", "migration"],
    default_args={"owner": "kafkalake", "retries": 1, "retry_delay": timedelta(seconds=30)},
    params={
        "subject": Param("fridge", type="string", pattern=SUBJECT_PATTERN,
                         description="registry subject (schemas/<subject>/)"),
        "schema": Param("", type="string", minLength=2, description="the new schema: Avro JSON text",
                        format="multiline"),
        "compatibility": Param(None, type=["null", "string"], enum=[None, *COMPATIBILITY_MODES],
                               description="override the subject's compatibility mode for this check"),
        "roll_streams": Param(True, type="boolean", description="restart the streams reading the subject"),
        "migrate_history": Param(False, type="boolean", description="rewrite lake hours into the new schema"),
        "dry_run": Param(False, type="boolean", description="validate and check only"),
    },
) as dag:
    found = validate_task()
    checked = check_task()
    go = not_dry_run()
    registered = register_task()
    rolled = roll_streams_task(registered)
    migrate = KafkalakeSparkSubmitOperator(
        task_id="migrate",
        job="migrate",
        job_args=[
            "{{ params.subject }}",
            "{{ '--history' if params.migrate_history else '' }}",
            "--before",
            "{{ ti.xcom_pull(task_ids='validate')['before'] | tojson }}",
        ],
        execution_timeout=timedelta(hours=2),
    )
    found >> checked >> go >> registered >> rolled >> migrate
