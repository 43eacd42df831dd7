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

The notebook's fridge fleet: old fridges keep sending v1 while the platform moves to a new
version. *Trigger DAG w/ config* with the subject and the new schema's JSON text:

1. **validate** — subject exists, the text is valid JSON / Avro, defaults match their types.
2. **check** — compatibility under the subject's mode (`schemas/<subject>/subject.yaml`) or the
   `compatibility` override, every incompatibility listed with its location; and that the
   streams' Iceberg tables can follow (new fields with defaults, int->long, float->double,
   decimal widening; a removed field keeps its column). **A refused schema fails here: the
   registry and the tables stay unchanged, streams keep running.**
3. **register** — atomic and idempotent (re-running with the same schema is a no-op).
4. **tables_behind** — which tables of the subject's streams lack the new version (pyiceberg,
   no Spark); when none, **evolve** is skipped.
5. **evolve** (Spark) — creates missing tables, evolves the others: new columns with Iceberg v3
   defaults (files written before them read the default, through Spark, pyiceberg, DuckDB),
   widened types; no data file rewritten. Old streams keep writing meanwhile.
6. **roll_streams** (`roll_streams`, default on) — every stream reading the subject stops at a
   batch boundary; its supervisor DAG `stream_<name>` restarts it with the new reader schema,
   from the same checkpoint (nothing lost, nothing twice). Streams that are not running pick the
   new version up at their next start.

`dry_run` stops after the check.
"""


@task(task_id="validate")
def validate_task(**context: Any) -> dict[str, object]:
    from kafkalake.config import get_settings
    from kafkalake.migration.rollout import parse_request, validate

    with fail_without_retry():
        request = parse_request(dict(context["params"]))
        found = validate(get_settings(), request)
    print(f"{request.subject}: schema valid; latest is v{found['latest']}; streams reading it: "
          f"{', '.join(found['streams']) or 'none'}")
    return found


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


@task.short_circuit(task_id="tables_behind", ignore_downstream_trigger_rules=False)
def tables_behind_task(registered: dict[str, object], **context: Any) -> bool:
    from kafkalake.config import get_settings
    from kafkalake.migration.evolve import tables_behind

    behind = tables_behind(get_settings(), str(context["params"]["subject"]))
    print(f"tables to create or evolve to v{registered['version']}: {', '.join(behind) or 'none'}")
    return bool(behind)


@task(task_id="roll_streams", trigger_rule="none_failed")
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
        "dry_run": Param(False, type="boolean", description="validate and check only"),
    },
) as dag:
    found = validate_task()
    checked = check_task()
    go = not_dry_run()
    registered = register_task()
    behind = tables_behind_task(registered)
    evolve = KafkalakeSparkSubmitOperator(
        task_id="evolve",
        job="migrate",
        job_args=["{{ params.subject }}"],
        execution_timeout=timedelta(minutes=30),
    )
    rolled = roll_streams_task(registered)
    found >> checked >> go >> registered >> behind >> evolve >> rolled
