"""``kafkalake spark``: the project's Spark jobs through spark-submit."""

from __future__ import annotations

import typer

from kafkalake.cli.app import _say, _settings, spark_app


@spark_app.command(
    "submit", context_settings={"allow_extra_args": True, "ignore_unknown_options": True}
)
def spark_submit(
    ctx: typer.Context,
    job: str = typer.Argument(..., help="a file in spark_jobs/, e.g. connector_check"),
    print_only: bool = typer.Option(False, "--print", help="print the spark-submit command, run nothing"),
) -> None:
    """spark-submit one of the project's jobs with the Maven jars; extra args go to the job."""
    import shlex

    from kafkalake.spark.submit import run_job, spark_submit_argv

    settings = _settings()
    if print_only:
        _say(shlex.join(spark_submit_argv(settings, job, ctx.args)))
        return
    result = run_job(settings, job, ctx.args)
    raise typer.Exit(result.returncode)
