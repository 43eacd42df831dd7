"""The ``kafkalake`` command: bring the local platform up and down, inspect it, run jobs.

Errors a user can act on (:class:`~kafkalake.errors.KafkalakeError`) print as one line on
stderr and exit non-zero; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import logging
import sys
from typing import Callable, List, Optional

import typer

from kafkalake.config import ENV_VARS, ConfigError, Settings, get_settings
from kafkalake.errors import KafkalakeError

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


@kafka_app.command("start")
def kafka_start() -> None:
    """Start the broker; returns once it answers a metadata request."""
    from kafkalake import kafka_local

    settings = _settings()
    _say(f"==> starting Kafka (KRaft) on {settings.bootstrap_servers}")
    st = kafka_local.start(settings)
    _say(f"kafka: {st.state} (pid {st.pid}) at {st.bootstrap_servers}")


@kafka_app.command("stop")
def kafka_stop() -> None:
    """Stop the broker cleanly."""
    from kafkalake import kafka_local

    was = kafka_local.stop(_settings())
    _say("kafka: stopped" if was else "kafka: was not running")


@kafka_app.command("status")
def kafka_status() -> None:
    """up / down; exit 1 when down."""
    from kafkalake import kafka_local

    st = kafka_local.status(_settings())
    _say(f"kafka: {st.state}" + (f" (pid {st.pid}) at {st.bootstrap_servers}" if st.running else ""))
    raise typer.Exit(0 if st.state == "up" else 1)


@airflow_app.command("start")
def airflow_start() -> None:
    """Start airflow standalone; returns once /api/v2/monitor/health is healthy."""
    from kafkalake import airflow_local

    settings = _settings()
    _say(f"==> starting Airflow 3 (standalone) at {settings.airflow_url} (first start migrates its DB: ~1 min)")
    st = airflow_local.start(settings, on_progress=_progress("waiting for Airflow to report healthy"))
    _print_airflow_login(settings, st.url)


@airflow_app.command("stop")
def airflow_stop() -> None:
    from kafkalake import airflow_local

    was = airflow_local.stop(_settings())
    _say("airflow: stopped" if was else "airflow: was not running")


@airflow_app.command("status")
def airflow_status() -> None:
    from kafkalake import airflow_local

    st = airflow_local.status(_settings())
    _say(f"airflow: {st.state}" + (f" at {st.url}" if st.running else ""))
    raise typer.Exit(0 if st.state == "up" else 1)


@airflow_app.command("env")
def airflow_env_cmd() -> None:
    """Print `export` lines to run the `airflow` CLI against this platform."""
    import shlex

    from kafkalake.airflow_local import airflow_env

    env = airflow_env(_settings(), base={})
    for key in sorted(env):
        if key.startswith(("AIRFLOW", "KAFKALAKE")):
            _say(f"export {key}={shlex.quote(env[key])}")


def _print_airflow_login(settings: Settings, url: str) -> None:
    from kafkalake.airflow_local import ADMIN_USER, admin_password

    password = admin_password(settings) or "(see simple_auth_manager_passwords.json.generated in AIRFLOW_HOME)"
    _say(f"airflow: up at {url}")
    _say(f"    login: {ADMIN_USER} / {password}")


@app.command("up")
def up() -> None:
    """Start Kafka and Airflow; print the UI address and login."""
    from kafkalake import airflow_local, kafka_local

    settings = _settings()
    _say(f"==> starting Kafka (KRaft) on {settings.bootstrap_servers}")
    kst = kafka_local.start(settings)
    _say(f"kafka: {kst.state} (pid {kst.pid})")
    _say(f"==> starting Airflow 3 (standalone) at {settings.airflow_url} (first start migrates its DB: ~1 min)")
    try:
        ast = airflow_local.start(settings, on_progress=_progress("waiting for Airflow to report healthy"))
    except KafkalakeError:
        kafka_local.stop(settings)  # no half-started platform
        raise
    _print_airflow_login(settings, ast.url)
    _say("stop everything with: kafkalake down")


@app.command("down")
def down() -> None:
    """Stop everything kafkalake started (Airflow first, then Kafka)."""
    from kafkalake import airflow_local, kafka_local

    settings = _settings()
    _say("airflow: stopped" if airflow_local.stop(settings) else "airflow: was not running")
    _say("kafka: stopped" if kafka_local.stop(settings) else "kafka: was not running")


@app.command("status")
def status() -> None:
    """State of the local services."""
    from kafkalake import airflow_local, kafka_local

    settings = _settings()
    kst = kafka_local.status(settings)
    ast = airflow_local.status(settings)
    _say(f"{'service':10} {'state':20} where")
    _say(f"{'kafka':10} {kst.state:20} {settings.bootstrap_servers}")
    _say(f"{'airflow':10} {ast.state:20} {settings.airflow_url}")


@app.command("config")
def config() -> None:
    """The settings in force and the environment variable behind each."""
    settings = _settings()
    for name, (attr, _) in ENV_VARS.items():
        _say(f"{name:34} {getattr(settings, attr)}")


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

    from kafkalake.spark_submit import run_job, spark_submit_argv

    settings = _settings()
    if print_only:
        _say(shlex.join(spark_submit_argv(settings, job, ctx.args)))
        return
    result = run_job(settings, job, ctx.args)
    raise typer.Exit(result.returncode)


def main(argv: Optional[List[str]] = None) -> None:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        # Standalone mode: click handles usage errors and typer.Exit (exit codes) itself;
        # our own errors propagate here and become one line.
        app(args=argv)
    except (KafkalakeError, ConfigError) as exc:
        typer.echo(f"error: {exc}", err=True)
        sys.exit(getattr(exc, "exit_code", 2))
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        sys.exit(130)


if __name__ == "__main__":
    main()
