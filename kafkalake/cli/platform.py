"""``kafkalake up/down/status/demo/config`` and the ``kafka`` / ``airflow`` command groups."""

from __future__ import annotations

import typer

from kafkalake.cli.app import _progress, _say, _settings, airflow_app, app, kafka_app
from kafkalake.config import ENV_VARS, Settings
from kafkalake.errors import KafkalakeError


@kafka_app.command("start")
def kafka_start() -> None:
    """Start the broker; returns once it answers a metadata request."""
    from kafkalake.platform import local_kafka as kafka_local

    settings = _settings()
    _say(f"==> starting Kafka (KRaft) on {settings.bootstrap_servers}")
    st = kafka_local.start(settings)
    _say(f"kafka: {st.state} (pid {st.pid}) at {st.bootstrap_servers}")


@kafka_app.command("stop")
def kafka_stop() -> None:
    """Stop the broker cleanly."""
    from kafkalake.platform import local_kafka as kafka_local

    was = kafka_local.stop(_settings())
    _say("kafka: stopped" if was else "kafka: was not running")


@kafka_app.command("status")
def kafka_status() -> None:
    """up / down; exit 1 when down."""
    from kafkalake.platform import local_kafka as kafka_local

    st = kafka_local.status(_settings())
    _say(f"kafka: {st.state}" + (f" (pid {st.pid}) at {st.bootstrap_servers}" if st.running else ""))
    raise typer.Exit(0 if st.state == "up" else 1)


@airflow_app.command("start")
def airflow_start() -> None:
    """Start airflow standalone; returns once /api/v2/monitor/health is healthy."""
    from kafkalake.platform import local_airflow as airflow_local

    settings = _settings()
    _say(f"==> starting Airflow 3 (standalone) at {settings.airflow_url} (first start migrates its DB: ~1 min)")
    st = airflow_local.start(settings, on_progress=_progress("waiting for Airflow to report healthy"))
    _print_airflow_login(settings, st.url)


@airflow_app.command("stop")
def airflow_stop() -> None:
    from kafkalake.platform import local_airflow as airflow_local

    was = airflow_local.stop(_settings())
    _say("airflow: stopped" if was else "airflow: was not running")


@airflow_app.command("status")
def airflow_status() -> None:
    from kafkalake.platform import local_airflow as airflow_local

    st = airflow_local.status(_settings())
    _say(f"airflow: {st.state}" + (f" at {st.url}" if st.running else ""))
    raise typer.Exit(0 if st.state == "up" else 1)


@airflow_app.command("env")
def airflow_env_cmd() -> None:
    """Print `export` lines to run the `airflow` CLI against this platform."""
    import shlex

    from kafkalake.platform.local_airflow import airflow_env

    env = airflow_env(_settings(), base={})
    for key in sorted(env):
        if key.startswith(("AIRFLOW", "KAFKALAKE")):
            _say(f"export {key}={shlex.quote(env[key])}")


def _print_airflow_login(settings: Settings, url: str) -> None:
    from kafkalake.platform.local_airflow import ADMIN_USER, admin_password

    password = admin_password(settings) or "(see simple_auth_manager_passwords.json.generated in AIRFLOW_HOME)"
    _say(f"airflow: up at {url}")
    _say(f"    login: {ADMIN_USER} / {password}")


@app.command("up")
def up() -> None:
    """Start Kafka and Airflow; print the UI address and login."""
    from kafkalake.platform import local_airflow as airflow_local
    from kafkalake.platform import local_kafka as kafka_local

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
    from kafkalake.platform import local_airflow as airflow_local
    from kafkalake.platform import local_kafka as kafka_local

    settings = _settings()
    _say("airflow: stopped" if airflow_local.stop(settings) else "airflow: was not running")
    _say("kafka: stopped" if kafka_local.stop(settings) else "kafka: was not running")


@app.command("status")
def status() -> None:
    """State of the local services."""
    from kafkalake.platform import local_airflow as airflow_local
    from kafkalake.platform import local_kafka as kafka_local

    settings = _settings()
    kst = kafka_local.status(settings)
    ast = airflow_local.status(settings)
    _say(f"{'service':10} {'state':20} where")
    _say(f"{'kafka':10} {kst.state:20} {settings.bootstrap_servers}")
    _say(f"{'airflow':10} {ast.state:20} {settings.airflow_url}")
    _print_streams(settings)


@app.command("demo")
def demo(
    records: int = typer.Option(50_000, "--records", min=1, help="fleet records to send"),
    stream: str = typer.Option("fridge", "--stream", help="the stream of streams.yaml to run"),
) -> None:
    """The fridge scenario on the running platform: topic, stream DAG, fleet, landing, status."""
    from kafkalake.platform.demo import run_compaction_demo, run_demo, run_rollout_demo, seed_demo_registry

    settings = _settings()
    if settings.schemas_dir != settings.home / "schemas":  # make demo: a registry of its own
        seed_demo_registry(settings, say=_say)
    run_demo(settings, stream_name=stream, records=records, say=_say)
    status()
    _say("")
    run_compaction_demo(settings, say=_say)
    _say("")
    run_rollout_demo(settings, stream_name=stream, say=_say)


@app.command("config")
def config() -> None:
    """The settings in force and the environment variable behind each."""
    settings = _settings()
    for name, (attr, _) in ENV_VARS.items():
        _say(f"{name:34} {getattr(settings, attr)}")


def _print_streams(settings: Settings) -> None:
    from kafkalake.stream.config import StreamConfigError, load_streams, stream_paths
    from kafkalake.stream.status import read_status, with_liveness

    try:
        streams = load_streams(settings.streams_file)
    except StreamConfigError as exc:
        _say(f"streams: {exc}")
        return
    _say("")
    _say(f"{'stream':14} {'state':9} {'batch':>6} {'rows':>9} {'rows/s':>9} {'lag':>9} {'last progress':21} error")
    for stream in streams.values():
        doc = read_status(stream_paths(settings, stream).status_file)
        if doc is None:
            _say(f"{stream.name:14} {'never run':9}")
            continue
        doc = with_liveness(doc)
        queries = list(doc.get("queries", {}).values())
        batch = max((q.get("batch_id", -1) for q in queries), default=-1)
        rows = sum(q.get("input_rows", 0) for q in queries)
        rate = sum(q.get("rows_per_second", 0.0) for q in queries)
        _say(f"{stream.name:14} {doc.get('state', '?'):9} {batch:>6} {rows:>9,} {rate:>9,.0f} "
             f"{doc.get('lag', 0):>9,} {str(doc.get('last_progress') or '-'):21} {doc.get('error') or ''}")
