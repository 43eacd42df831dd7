"""``kafkalake spark``: the project's Spark jobs through spark-submit."""

from __future__ import annotations

import typer

from kafkalake.cli.app import _say, _settings, app, spark_app


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


@spark_app.command("sql")
def spark_sql(
    statements: list[str] = typer.Argument(..., help="SQL statements on the catalog, e.g. 'SELECT count(*) FROM "
                                                     "kafkalake.lake.fridge'"),
    rows: int = typer.Option(20, help="rows to print per result"),
) -> None:
    """Run Spark SQL on the platform's Iceberg catalog (time travel, DELETE, CALL procedures)."""
    from kafkalake.spark.submit import run_job

    result = run_job(_settings(), "sql", [*statements, "--rows", str(rows)])
    raise typer.Exit(result.returncode)


@app.command("tables")
def list_tables() -> None:
    """The catalog's tables with rows, files and snapshots (pyiceberg: no JVM)."""
    from kafkalake.catalog.config import catalog_config
    from kafkalake.catalog.reading import tables

    settings = _settings()
    _say(f"catalog {catalog_config(settings).name} ({catalog_config(settings).uri})")
    for row in tables(settings):
        _say(f"  {row['table']:<32} {row['format']:<8} {row['rows']:>12,} rows {row['files']:>7,} files "
             f"{row['bytes'] / 1e6:>10.1f} MB {row['snapshots']:>6} snapshots")
