"""Platform check: spark-submit a small job with the Maven jars through spark_default."""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import DAG, Param

from kafkalake.airflow.operators.spark_submit import KafkalakeSparkSubmitOperator

DOC = """
### kafkalake platform check

Runs `spark_jobs/connector_check.py` with `SparkSubmitOperator` on the `spark_default`
connection (local mode by default): it reads a Kafka topic through Spark's Kafka source
(or 100 generated rows when **topic** is empty) and round-trips every row through
`to_avro` / `from_avro`. It proves that Spark, the Maven-managed connector jars and Kafka
line up. Trigger it from the UI after changing `jvm/pom.xml` or the Spark connection.

* **Fails when** a connector jar is missing or of another Spark version, the topic is
  unknown, or a row differs after the round trip — the task log says which.
* **Params:** `topic` (optional) and `expect_rows` (0 = don't check the count).
"""

with DAG(
    dag_id="kafkalake_platform_check",
    description="Spark + Kafka/Avro connector jars + Kafka: a round-trip smoke job",
    doc_md=DOC,
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    tags=["kafkalake", "platform"],
    default_args={"owner": "kafkalake", "retries": 1, "retry_delay": timedelta(seconds=30)},
    params={
        "topic": Param("", type="string", pattern=r"^[A-Za-z0-9._-]{0,249}$",
                       description="Kafka topic to read (empty: generated rows)"),
        "expect_rows": Param(0, type="integer", minimum=0, description="exact row count expected (0: any)"),
    },
) as dag:
    KafkalakeSparkSubmitOperator(
        task_id="connector_check",
        job="connector_check",
        job_args=[
            "--topic", "{{ params.topic }}",
            "--expect-rows", "{{ params.expect_rows }}",
        ],
    )
