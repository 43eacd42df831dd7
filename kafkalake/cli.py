"""The ``kafkalake`` command: bring the local platform up and down, inspect it, run jobs.

Errors a user can act on (:class:`~kafkalake.errors.KafkalakeError`) print as one line on
stderr and exit non-zero; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
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


def _mount_schema_app() -> None:
    from kafkalake.schema_cli import schema_app

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
    _print_streams(settings)


@app.command("demo")
def demo(
    records: int = typer.Option(50_000, "--records", min=1, help="fleet records to send"),
    stream: str = typer.Option("fridge", "--stream", help="the stream of streams.yaml to run"),
) -> None:
    """The fridge scenario on the running platform: topic, stream DAG, fleet, landing, status."""
    from kafkalake.demo import run_compaction_demo, run_demo, run_rollout_demo, seed_demo_registry

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


topic_app = typer.Typer(help="Kafka topics (created with LogAppendTime timestamps).", no_args_is_help=True)
app.add_typer(topic_app, name="topic")


@topic_app.command("create")
def topic_create(
    name: str = typer.Argument(..., help="topic name"),
    partitions: int = typer.Option(2, "--partitions", "-p", min=1),
    replication_factor: int = typer.Option(1, "--replication-factor", "-r", min=1),
    config: List[str] = typer.Option([], "--config", "-c", help="extra topic config KEY=VALUE (repeatable)"),
) -> None:
    """Create a topic with message.timestamp.type=LogAppendTime (idempotent)."""
    from kafkalake.topics import create_topic, validate_topic_name

    settings = _settings()
    validate_topic_name(name)
    extra: dict[str, str] = {}
    for item in config:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise typer.BadParameter(f"{item!r} is not KEY=VALUE", param_hint="--config")
        extra[key] = value
    created = create_topic(
        settings.bootstrap_servers, name,
        partitions=partitions, replication_factor=replication_factor, config=extra,
    )
    _say(f"topic {name}: {'created' if created else 'already exists'} "
         f"({partitions} partitions, replication {replication_factor}, LogAppendTime)")


@app.command("produce")
def produce(
    topic: str = typer.Option(..., "--topic", "-t", help="topic to send to (see `kafkalake topic create`)"),
    count: int = typer.Option(..., "--count", "-n", min=1, help="number of valid records"),
    rate: Optional[float] = typer.Option(None, "--rate", min=1, help="records/s (default: as fast as possible)"),
    v1_fraction: float = typer.Option(0.3, "--v1-fraction", min=0.0, max=1.0, help="share of devices still on v1"),
    devices: int = typer.Option(100, "--devices", min=1, help="fridges in the fleet (the message key)"),
    inject_garbage: float = typer.Option(
        0.0, "--inject-garbage", min=0.0, max=0.5, help="extra share of malformed payloads of every kind"
    ),
    subject: str = typer.Option("fridge", "--subject", help="registry subject of the fleet's schemas"),
    seed: int = typer.Option(7, "--seed", help="random seed: the same seed sends the same records"),
    workers: int = typer.Option(
        0, "--workers", min=0, help="producer processes, sharded by device (0: one per CPU core, max 4)"
    ),
    timeout: float = typer.Option(
        120.0, "--timeout", min=1.0, help="seconds a record may take to be acknowledged before it counts as lost"
    ),
) -> None:
    """Simulate the fridge fleet: D devices, some on schema v1, the rest on the latest version."""
    import os

    from kafkalake.producer import fleet_from_registry, produce_parallel
    from kafkalake.registry import Registry
    from kafkalake.topics import validate_topic_name

    settings = _settings()
    validate_topic_name(topic)
    fleet = fleet_from_registry(
        Registry(settings.schemas_dir), subject=subject, devices=devices,
        v1_fraction=v1_fraction, garbage_fraction=inject_garbage, seed=seed,
    )
    _say(
        f"==> producing {count:,} {subject} records to {topic} on {settings.bootstrap_servers} "
        f"({fleet.v1_devices} of {devices} devices on v1, schema ids {fleet.v1.schema_id}/{fleet.v2.schema_id}"
        + (f", {inject_garbage:.1%} garbage" if inject_garbage else "") + ")"
    )
    workers = workers or min(4, os.cpu_count() or 1)
    report = produce_parallel(
        bootstrap_servers=settings.bootstrap_servers,
        producer_overrides={"message.timeout.ms": int(timeout * 1000)},
        flush_timeout=timeout + 10,
        topic=topic,
        shard_messages=lambda shard, shards: fleet.messages(count, shard=shard, shards=shards),
        workers=min(workers, devices),
        rate=rate,
        on_progress=_rate_progress(count),
        progress_every=max(1000, min(100_000, count // 20)),
    )
    _say(
        f"produced {report.produced:,} ({report.garbage:,} malformed on purpose) in {report.seconds:.1f}s "
        f"= {report.rate:,.0f} records/s with {report.workers} worker(s); delivered {report.delivered:,}; "
        f"per schema id {dict(sorted(report.by_schema_id.items()))}"
    )
    report.raise_for_loss(topic)


def _rate_progress(total: int) -> Callable[[int, float], None]:
    """A one-line progress bar with the live rate (redrawn in place on a terminal)."""
    tty = sys.stderr.isatty()

    def show(done: int, elapsed: float) -> None:
        share = min(1.0, done / total) if total else 1.0
        bar = "#" * int(share * 30)
        rate = done / elapsed if elapsed else 0.0
        line = f"[{bar:<30}] {done:>12,} {share:6.1%} {rate:>10,.0f} rec/s"
        typer.echo(("\r" + line) if tty else line, err=True, nl=not tty)
        if tty and done >= total:
            typer.echo("", err=True)

    return show


stream_app = typer.Typer(help="Streams of streams.yaml: Kafka -> landing zone.", no_args_is_help=True)
app.add_typer(stream_app, name="stream")


@stream_app.command("run")
def stream_run(
    name: str = typer.Argument(..., help="a stream name from streams.yaml"),
    available_now: bool = typer.Option(False, "--available-now", help="process what is in Kafka, then stop"),
    debug_sink: Optional[str] = typer.Option(None, "--debug-sink", help="console or memory: print, land nothing"),
) -> None:
    """Run a stream with spark-submit (the Maven jars, spark_default's master) until stopped."""
    from kafkalake.spark_submit import run_job, stream_conf
    from kafkalake.streams import get_stream

    settings = _settings()
    stream = get_stream(settings, name)
    args = [stream.name] + (["--available-now"] if available_now else [])
    if debug_sink:
        if debug_sink not in ("console", "memory"):
            raise typer.BadParameter("console or memory", param_hint="--debug-sink")
        args += ["--debug-sink", debug_sink]
    _say(f"==> stream {stream.name}: {', '.join(stream.topics)} -> {settings.lake_root / 'landing'} "
         f"({'available-now' if available_now else 'trigger ' + stream.trigger}); "
         f"stop with `kafkalake stream stop {stream.name}`")
    result = run_job(settings, "stream_ingest", args, conf=stream_conf(stream))
    raise typer.Exit(result.returncode)


@stream_app.command("stop")
def stream_stop(name: str = typer.Argument(..., help="a stream name from streams.yaml")) -> None:
    """Ask the running driver to stop at the next batch boundary."""
    from kafkalake.stream_job import request_stop
    from kafkalake.streams import get_stream

    settings = _settings()
    path = request_stop(settings, get_stream(settings, name))
    _say(f"stream {name}: stop requested ({path}); the driver stops after its current batch")


@stream_app.command("list")
def stream_list() -> None:
    """Declared streams."""
    from kafkalake.streams import load_streams

    settings = _settings()
    for stream in load_streams(settings.streams_file).values():
        _say(f"{stream.name:16} topics={','.join(stream.topics)} subject={stream.subject} "
             f"formats={','.join(stream.sink_formats)} trigger={stream.trigger!r}")


def _print_streams(settings: Settings) -> None:
    from kafkalake.stream_status import read_status
    from kafkalake.streams import StreamConfigError, load_streams, stream_paths

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
        from kafkalake.processes import pid_alive
        from kafkalake.stream_status import RUNNING, STARTING

        if doc.get("state") in (RUNNING, STARTING) and not pid_alive(int(doc.get("pid") or 0)):
            doc["state"], doc["error"] = "dead", f"driver pid {doc.get('pid')} is gone (killed or crashed)"
        queries = list(doc.get("queries", {}).values())
        batch = max((q.get("batch_id", -1) for q in queries), default=-1)
        rows = sum(q.get("input_rows", 0) for q in queries)
        rate = sum(q.get("rows_per_second", 0.0) for q in queries)
        _say(f"{stream.name:14} {doc.get('state', '?'):9} {batch:>6} {rows:>9,} {rate:>9,.0f} "
             f"{doc.get('lag', 0):>9,} {str(doc.get('last_progress') or '-'):21} {doc.get('error') or ''}")


@app.command("compact")
def compact(
    tables: Optional[List[str]] = typer.Argument(None, help="tables (stream names; name.avro for an Avro sink); default all"),
    first: Optional[str] = typer.Option(None, "--from", help="first hour, e.g. 2026-11-24T05:00Z"),
    last: Optional[str] = typer.Option(None, "--to", help="last hour (inclusive)"),
    target_mb: Optional[int] = typer.Option(None, "--target-mb", min=1, help="target output file size in MiB"),
    dry_run: bool = typer.Option(False, "--dry-run", help="print the plan, change nothing"),
    closed_before: Optional[str] = typer.Option(None, "--closed-before", help="only hours ending before this (ISO)"),
    report: Optional[Path] = typer.Option(None, "--report", help="JSON report path (a PNG histogram goes beside it)"),
) -> None:
    """Compact closed landing hours into the lake zone (spark_jobs/compact.py), verified and atomic."""
    import time as _time

    from kafkalake import compaction_report
    from kafkalake.compaction import report_dir
    from kafkalake.lake import Hour
    from kafkalake.spark_submit import run_job

    settings = _settings()
    for value in (first, last):
        if value:
            Hour.parse(value)  # a clear error before Spark starts
    report = report or report_dir(settings) / f"{_time.strftime('%Y%m%dT%H%M%S')}.json"
    args = [*(tables or []), "--report", str(report)]
    args += ["--from", first] if first else []
    args += ["--to", last] if last else []
    args += ["--target-mb", str(target_mb)] if target_mb else []
    args += ["--closed-before", closed_before] if closed_before else []
    args += ["--dry-run"] if dry_run else []
    result = run_job(settings, "compact", args)
    if result.returncode != 0:
        raise typer.Exit(result.returncode)
    run = compaction_report.load(report)
    for line in compaction_report.summary_lines(run):
        _say(line)
    if not dry_run:
        _say(f"report: {report}  histogram: {compaction_report.render_png(run, report.with_suffix('.png'))}")


@app.command("backfill")
def backfill(
    table: str = typer.Argument(..., help="table (stream name; name.avro for an Avro sink)"),
    start: str = typer.Option(..., "--start", help="first hour replaced, ISO on a whole hour, e.g. 2026-11-24T05:00Z"),
    end: str = typer.Option(..., "--end", help="end of the range, exclusive (05:00Z..07:00Z = hours 05 and 06)"),
    source: str = typer.Option("kafka", "--source", help="kafka (replay) or landing (rebuild from the landing sink)"),
    starting_offsets: Optional[str] = typer.Option(
        None, "--starting-offsets", help='replay by offsets: {"topic": {"0": first}} (-2 = earliest); must cover the hours'),
    ending_offsets: Optional[str] = typer.Option(
        None, "--ending-offsets", help='replay by offsets: {"topic": {"0": end}} exclusive (-1 = latest)'),
    dry_run: bool = typer.Option(False, "--dry-run", help="print the plan (hours, records per hour), change nothing"),
    report: Optional[Path] = typer.Option(None, "--report", help="JSON report path"),
) -> None:
    """Replace whole closed hours of a table from Kafka, or rebuild them from landing (spark_jobs/backfill.py)."""
    import json as _json
    import time as _time

    from kafkalake.backfill import (load_report, parse_request, plan_backfill, report_dir, run_backfill, safe_name,
                                    summary_lines, verify_report)
    from kafkalake.spark_submit import run_job

    settings = _settings()
    request = parse_request(table, source=source, start=start, end=end,
                            starting_offsets=starting_offsets, ending_offsets=ending_offsets)
    if dry_run:  # the plan needs Kafka and the lake, not Spark
        run = run_backfill(settings, request, dry_run=True, progress=_say)
        if report:
            report.parent.mkdir(parents=True, exist_ok=True)
            report.write_text(_json.dumps(run, indent=1))
        for line in summary_lines(run):
            _say(line)
        return
    plan_backfill(settings, request)  # a refusal is one line, before Spark starts
    report = report or report_dir(settings) / f"{_time.strftime('%Y%m%dT%H%M%S')}-{safe_name(table)}.json"
    result = run_job(settings, "backfill", request.job_args(report=report))
    if result.returncode != 0:
        raise typer.Exit(result.returncode)
    run = load_report(report)
    for line in summary_lines(run):
        _say(line)
    _say(f"report: {report}")
    for line in verify_report(settings, run):  # a mismatch raises: one line, exit 9
        _say(line)


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
