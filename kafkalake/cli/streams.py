"""``kafkalake topic``, ``produce`` and ``stream``: topics, test traffic, stream drivers."""

from __future__ import annotations

import sys
from collections.abc import Callable

import typer

from kafkalake.cli.app import _say, _settings, app

topic_app = typer.Typer(help="Kafka topics (created with LogAppendTime timestamps).", no_args_is_help=True)
app.add_typer(topic_app, name="topic")


@topic_app.command("create")
def topic_create(
    name: str = typer.Argument(..., help="topic name"),
    partitions: int = typer.Option(2, "--partitions", "-p", min=1),
    replication_factor: int | None = typer.Option(
        None, "--replication-factor", "-r", min=1, help="default: every broker (1, or 3 on a cluster)"),
    config: list[str] = typer.Option([], "--config", "-c", help="extra topic config KEY=VALUE (repeatable)"),
) -> None:
    """Create a topic with message.timestamp.type=LogAppendTime (idempotent)."""
    from kafkalake.kafka.topics import create_topic, validate_topic_name

    settings = _settings()
    validate_topic_name(name)
    replication_factor = replication_factor or settings.replication_factor
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
    rate: float | None = typer.Option(None, "--rate", min=1, help="records/s (default: as fast as possible)"),
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

    from kafkalake.kafka.topics import validate_topic_name
    from kafkalake.produce.fleet import fleet_from_registry
    from kafkalake.produce.producer import produce_parallel
    from kafkalake.schema.registry import Registry

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


stream_app = typer.Typer(help="Streams of streams.yaml: Kafka -> Iceberg tables.", no_args_is_help=True)
app.add_typer(stream_app, name="stream")


@stream_app.command("run")
def stream_run(
    name: str = typer.Argument(..., help="a stream name from streams.yaml"),
    available_now: bool = typer.Option(False, "--available-now", help="process what is in Kafka, then stop"),
    debug_sink: str | None = typer.Option(None, "--debug-sink", help="console or memory: print, land nothing"),
) -> None:
    """Run a stream with spark-submit (the Maven jars, spark_default's master) until stopped."""
    from kafkalake.spark.submit import run_job, stream_conf
    from kafkalake.stream.config import get_stream

    settings = _settings()
    stream = get_stream(settings, name)
    args = [stream.name] + (["--available-now"] if available_now else [])
    if debug_sink:
        if debug_sink not in ("console", "memory"):
            raise typer.BadParameter("console or memory", param_hint="--debug-sink")
        args += ["--debug-sink", debug_sink]
    from kafkalake.catalog.config import catalog_config

    tables = ", ".join(catalog_config(settings).identifier(t) for t in stream.all_tables)
    _say(f"==> stream {stream.name}: {', '.join(stream.topics)} -> {tables} "
         f"({'available-now' if available_now else 'trigger ' + stream.trigger}); "
         f"stop with `kafkalake stream stop {stream.name}`")
    result = run_job(settings, "stream_ingest", args, conf=stream_conf(stream))
    raise typer.Exit(result.returncode)


@stream_app.command("stop")
def stream_stop(name: str = typer.Argument(..., help="a stream name from streams.yaml")) -> None:
    """Ask the running driver to stop at the next batch boundary."""
    from kafkalake.stream.config import get_stream
    from kafkalake.stream.driver import request_stop

    settings = _settings()
    path = request_stop(settings, get_stream(settings, name))
    _say(f"stream {name}: stop requested ({path}); the driver stops after its current batch")


@stream_app.command("list")
def stream_list() -> None:
    """Declared streams."""
    from kafkalake.stream.config import load_streams

    settings = _settings()
    for stream in load_streams(settings.streams_file).values():
        _say(f"{stream.name:16} topics={','.join(stream.topics)} subject={stream.subject} "
             f"formats={','.join(stream.sink_formats)} trigger={stream.trigger!r}")
