"""The ``kafkalake`` Typer app, its command groups, and :func:`main` (the console script)."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable

import typer

from kafkalake.config import ConfigError, Settings, get_settings
from kafkalake.errors import ExitCode, KafkalakeError

app = typer.Typer(
    help="kafkalake: Kafka -> Avro -> Spark -> a clean lake, run by Airflow 3.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)
kafka_app = typer.Typer(help="The local Kafka broker (KRaft).", no_args_is_help=True)
airflow_app = typer.Typer(help="The local Airflow (airflow standalone).", no_args_is_help=True)
spark_app = typer.Typer(help="Spark jobs of this project (spark_jobs/).", no_args_is_help=True)
app.add_typer(kafka_app, name="kafka")
app.add_typer(airflow_app, name="airflow")
app.add_typer(spark_app, name="spark")


def _mount_schema_app() -> None:
    from kafkalake.cli.schema import schema_app

    app.add_typer(schema_app, name="schema")


_mount_schema_app()


def _settings() -> Settings:
    return get_settings()


def _say(message: str) -> None:
    typer.echo(message)


def _progress(what: str) -> Callable[[float], None]:
    last = [0.0]

    def report(elapsed: float) -> None:
        if elapsed - last[0] >= 10:
            last[0] = elapsed
            _say(f"    ... {what} ({elapsed:.0f}s)")

    return report


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        # Standalone mode: click handles usage errors and typer.Exit (exit codes) itself;
        # our own errors propagate here and become one line.
        app(args=argv)
    except (KafkalakeError, ConfigError) as exc:
        typer.echo(f"error: {exc}", err=True)
        sys.exit(int(getattr(exc, "exit_code", ExitCode.USAGE)))
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        sys.exit(ExitCode.INTERRUPTED)
