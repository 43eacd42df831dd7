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
def up(
    cluster: bool = typer.Option(
        False, "--cluster",
        help="a cluster on this machine: 3 KRaft brokers and a Spark standalone master with 2 workers"),
) -> None:
    """Start Kafka, the schema registry API and Airflow; print the UI address and login."""
    from kafkalake.config import CLUSTER_MARKER
    from kafkalake.platform import local_airflow as airflow_local
    from kafkalake.platform import local_kafka as kafka_local
    from kafkalake.platform import local_registry as registry_local
    from kafkalake.platform import local_spark as spark_local

    settings = _settings()
    if cluster and not settings.cluster:
        marker = settings.state_dir / CLUSTER_MARKER  # every later command of this state folder sees a cluster
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.write_text("started by `kafkalake up --cluster`; `kafkalake down` removes it\n")
        settings = _settings()

    def stop_started() -> None:  # no half-started platform
        registry_local.stop(settings)
        if settings.cluster:
            spark_local.stop(settings)
        kafka_local.stop(settings)

    if settings.cluster:
        _say(f"==> starting a Kafka cluster (3 KRaft brokers) on {settings.bootstrap_servers}")
    else:
        _say(f"==> starting Kafka (KRaft) on {settings.bootstrap_servers}")
    kst = kafka_local.start(settings)
    _say(f"kafka: {kst.state} (pid {kst.pid})")
    if settings.cluster:
        workers = len(spark_local.WORKERS)
        _say(f"==> starting Spark standalone at {settings.spark_master} (a master and {workers} workers)")
        try:
            sst = spark_local.start(settings)
        except KafkalakeError:
            stop_started()
            raise
        _say(f"spark: {sst.state}, {sst.workers_alive} workers, web UI {sst.ui_url}")
    _say(f"==> starting the schema registry API at {settings.registry_url}")
    try:
        rst = registry_local.start(settings)
    except KafkalakeError:
        stop_started()
        raise
    _say(f"registry: {rst.state} (pid {rst.pid}), {'read-write' if settings.registry_allow_register else 'read-only'}")
    _say(f"==> starting Airflow 3 (standalone) at {settings.airflow_url} (first start migrates its DB: ~1 min)")
    try:
        ast = airflow_local.start(settings, on_progress=_progress("waiting for Airflow to report healthy"))
    except KafkalakeError:
        stop_started()
        raise
    _print_airflow_login(settings, ast.url)
    _say("stop everything with: kafkalake down")


@app.command("down")
def down() -> None:
    """Stop everything kafkalake started (Airflow first, then the registry API, Spark, Kafka)."""
    from kafkalake.config import CLUSTER_MARKER
    from kafkalake.platform import local_airflow as airflow_local
    from kafkalake.platform import local_kafka as kafka_local
    from kafkalake.platform import local_registry as registry_local
    from kafkalake.platform import local_spark as spark_local

    settings = _settings()
    _say("airflow: stopped" if airflow_local.stop(settings) else "airflow: was not running")
    _say("registry: stopped" if registry_local.stop(settings) else "registry: was not running")
    if spark_local.stop(settings):
        _say("spark: stopped")
    _say("kafka: stopped" if kafka_local.stop(settings) else "kafka: was not running")
    (settings.state_dir / CLUSTER_MARKER).unlink(missing_ok=True)


@app.command("status")
def status() -> None:
    """State of the local services."""
    from kafkalake.platform import local_airflow as airflow_local
    from kafkalake.platform import local_kafka as kafka_local
    from kafkalake.platform import local_registry as registry_local

    settings = _settings()
    kst = kafka_local.status(settings)
    rst = registry_local.status(settings)
    ast = airflow_local.status(settings)
    _say(f"{'service':10} {'state':20} where")
    _say(f"{'kafka':10} {kst.state:20} {settings.bootstrap_servers}")
    if settings.cluster:
        from kafkalake.platform import local_spark as spark_local

        for broker in kafka_local.nodes(settings):
            nst = kafka_local.node_status(settings, broker)
            _say(f"{'  broker ' + str(broker.node_id):10} {nst.state:20} {broker.address}"
                 + (f" (pid {nst.pid})" if nst.pid else ""))
        sst = spark_local.status(settings)
        apps = f"; running: {', '.join(sst.apps)}" if sst.apps else ""
        _say(f"{'spark':10} {sst.state:20} {settings.spark_master} ({sst.workers_alive} workers alive, "
             f"web UI {sst.ui_url}{apps})")
    _say(f"{'registry':10} {rst.state:20} {settings.registry_url}")
    _say(f"{'airflow':10} {ast.state:20} {settings.airflow_url}")
    _print_streams(settings)


@app.command("demo")
def demo(
    records: int = typer.Option(50_000, "--records", min=1, help="fleet records to send"),
    stream: str = typer.Option("fridge", "--stream", help="the stream of streams.yaml to run"),
) -> None:
    """The fridge scenario on the running platform: topic, stream DAG, fleet, Iceberg table, queries."""
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
    """The streams' lines: the Streams view's own figures (kafkalake.ui.streams), without Airflow's state."""
    from kafkalake.stream.config import StreamConfigError
    from kafkalake.ui.streams import status_table, stream_views

    try:
        views = stream_views(settings, history=False)
    except StreamConfigError as exc:
        _say(f"streams: {exc}")
        return
    _say("")
    for line in status_table(views):
        _say(line)
