"""SparkSubmitOperator for the project's own jobs.

A DAG names a job (``spark_jobs/<job>.py``) and its arguments; the Maven jar list, the
platform conf and the ``KAFKALAKE_*`` environment are filled in at execute time on the worker
(globbing the jar folder at DAG parse time would be I/O in the scheduler's hot loop).
Everything else — connection ``spark_default``, ``on_kill`` stopping spark-submit — is the
provider's.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow.providers.apache.spark.operators.spark_submit import SparkSubmitOperator

if TYPE_CHECKING:
    from airflow.sdk import Context


class KafkalakeSparkSubmitOperator(SparkSubmitOperator):
    """Run ``spark_jobs/<job>.py`` with the platform's jars, conf and settings."""

    template_fields: Sequence[str] = (*SparkSubmitOperator.template_fields, "job")

    def __init__(self, *, job: str, job_args: Sequence[str] = (), **kwargs: Any) -> None:
        kwargs.setdefault("name", f"kafkalake-{job}")
        kwargs.setdefault("conn_id", "spark_default")
        super().__init__(application=f"{job}.py", application_args=list(job_args), **kwargs)
        self.job = job

    def execute(self, context: Context) -> None:
        from kafkalake.config import get_settings
        from kafkalake.spark import jvm
        from kafkalake.spark.submit import job_conf, job_env, job_path

        settings = get_settings()
        # an optional flag that Jinja rendered as "" must not reach the job as an argument;
        # an argument that rendered (natively) as a list is spread into several
        args: list[str] = []
        for arg in self.application_args or []:
            args.extend(str(a) for a in arg) if isinstance(arg, (list, tuple)) else args.append(str(arg))
        self.application_args = [arg for arg in args if arg != ""]
        self.application = str(job_path(settings, self.job))
        self.jars = jvm.spark_jars_arg(settings)
        self.conf = job_conf(settings, self.conf)
        job_environment = job_env(settings, base={})
        self.env_vars = {**job_environment, **(self.env_vars or {})}
        self._hook = None  # rebuild the hook with the values above
        return super().execute(context)
