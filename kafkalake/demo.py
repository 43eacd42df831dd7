"""The fridge-fleet scenario end to end, for `make demo` (after `kafkalake up`).

1. create the stream's topic (LogAppendTime), 2. unpause the `stream_<name>` supervisor DAG so
Airflow starts the Spark job, 3. run the fleet simulator (30 % of the devices stay on schema v1,
a little garbage mixed in), 4. wait until the landing zone has every valid record, 5. print
where the data landed, the per-version row counts and `kafkalake status`; 6. compaction: the
fleet's offline backlog (three past hours, replayed with the devices' own timestamps) goes
through the ``fridge_backlog`` stream in many small files, then ``kafkalake compact`` merges
the closed hours and prints files before -> after.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

from kafkalake.airflow_local import airflow_env
from kafkalake.config import Settings
from kafkalake.errors import ServiceError
from kafkalake.landing import read_landing
from kafkalake.producer import fleet_from_registry, produce_parallel
from kafkalake.registry import Registry
from kafkalake.streams import get_stream, stream_paths
from kafkalake.topics import create_topic

WAIT_S = 600.0


def run_demo(
    settings: Settings,
    *,
    stream_name: str = "fridge",
    records: int = 50_000,
    garbage: float = 0.01,
    say: Callable[[str], None] = print,
) -> int:
    stream = get_stream(settings, stream_name)
    paths = stream_paths(settings, stream)
    for topic in stream.topics:
        created = create_topic(settings.bootstrap_servers, topic)
        say(f"topic {topic}: {'created' if created else 'exists'} (LogAppendTime)")

    dag_id = f"stream_{stream.name}"
    env = airflow_env(settings)
    airflow = str(Path(sys.executable).parent / "airflow")
    result = subprocess.run([airflow, "dags", "unpause", dag_id], env=env, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise ServiceError(f"cannot unpause {dag_id}: {(result.stderr or result.stdout).strip().splitlines()[-1:]}")
    say(f"airflow: {dag_id} unpaused — it starts spark_jobs/stream_ingest.py and keeps it running")

    before = _landed(paths.landing[stream.sink_formats[0]])
    fleet = fleet_from_registry(Registry(settings.schemas_dir), subject=stream.subject, devices=200,
                                v1_fraction=0.3, garbage_fraction=garbage)
    say(f"==> fleet: {records:,} records from 200 fridges (60 on schema v1), {garbage:.0%} malformed on purpose")
    report = produce_parallel(
        bootstrap_servers=settings.bootstrap_servers, topic=stream.topics[0],
        shard_messages=lambda shard, shards: fleet.messages(records, shard=shard, shards=shards), workers=1,
    )
    report.raise_for_loss(stream.topics[0])
    say(f"produced {report.produced:,} in {report.seconds:.1f}s ({report.garbage:,} malformed); waiting for the landing zone")

    sink = paths.landing[stream.sink_formats[0]]
    deadline = time.monotonic() + WAIT_S
    last_say = 0.0
    while True:
        landed = _landed(sink) - before
        if landed >= records:
            break
        if time.monotonic() > deadline:
            raise ServiceError(
                f"only {landed:,} of {records:,} records landed in {WAIT_S:.0f}s: check the {dag_id} DAG in the "
                f"Airflow UI and {paths.status_file}"
            )
        if time.monotonic() - last_say > 10:
            last_say = time.monotonic()
            say(f"    ... {landed:,} of {records:,} landed")
        time.sleep(2)

    table = read_landing(sink, columns=["schema_version"])
    counts = table.group_by("schema_version").aggregate([("schema_version", "count")]).to_pylist()
    quarantined = read_landing(sink, zone="quarantine", columns=["reason"]).num_rows
    say("")
    say(f"landing zone: {sink}")
    say("  zone=landing rows by schema version: "
        + ", ".join(f"v{c['schema_version']}: {c['schema_version_count']:,}" for c in sorted(counts, key=lambda c: c['schema_version'])))
    say(f"  zone=quarantine rows: {quarantined:,} (raw bytes + reason code)")
    say(f"  read it: spark.read.parquet('{sink}').where(\"zone = 'landing'\")")
    say(f"status file: {paths.status_file}")
    return 0


def run_compaction_demo(settings: Settings, *, stream_name: str = "fridge_backlog", per_hour: int = 20_000,
                        say: Callable[[str], None] = print) -> dict:
    """Backlog of three past hours -> small landing files -> ``kafkalake compact`` -> report."""
    import json
    from datetime import datetime, timedelta, timezone

    from kafkalake import compaction_report
    from kafkalake.compaction import report_dir
    from kafkalake.lake import Hour
    from kafkalake.producer import make_producer
    from kafkalake.spark_submit import run_job, stream_conf

    stream = get_stream(settings, stream_name)
    topic = stream.topics[0]
    created = create_topic(settings.bootstrap_servers, topic, config={"message.timestamp.type": "CreateTime"})
    now = datetime.now(timezone.utc).replace(minute=0, second=0, microsecond=0)
    hours = [Hour.of(now - timedelta(hours=h)) for h in (4, 3, 2)]
    if created:
        fleet = fleet_from_registry(Registry(settings.schemas_dir), subject=stream.subject, devices=200, v1_fraction=0.3)
        producer = make_producer(settings.bootstrap_servers)
        say(f"==> backlog: {per_hour * 3:,} buffered readings for {hours[0].key}..{hours[-1].key} -> {topic} (CreateTime)")
        messages = fleet.messages(per_hour * 3)
        for i, (key, value, _sid, _kind) in enumerate(messages):
            hour = hours[i // per_hour]
            stamp = hour.start + timedelta(seconds=3600 * (i % per_hour) / per_hour)
            while True:
                try:
                    producer.produce(topic, value=value, key=key, timestamp=int(stamp.timestamp() * 1000))
                    break
                except BufferError:
                    producer.poll(0.1)
        if producer.flush(60):
            raise ServiceError(f"backlog: not every record reached {topic}")
    say(f"==> stream {stream.name}: --available-now, max_offsets_per_trigger={stream.max_offsets_per_trigger} "
        "(small files on purpose: the seed's 'files too small' problem)")
    result = run_job(settings, "stream_ingest", [stream.name, "--available-now"], conf=stream_conf(stream))
    if result.returncode != 0:
        raise ServiceError(f"stream {stream.name} failed (exit {result.returncode}); see the output above")
    report = report_dir(settings) / f"demo-{datetime.now(timezone.utc):%Y%m%dT%H%M%S}.json"
    tables = [stream.name if fmt == stream.sink_formats[0] else f"{stream.name}.{fmt}" for fmt in stream.sink_formats]
    say(f"==> kafkalake compact {' '.join(tables)}")
    result = run_job(settings, "compact", [*tables, "--report", str(report)])
    if result.returncode != 0:
        raise ServiceError(f"compaction failed (exit {result.returncode}); see the output above")
    run = json.loads(report.read_text())
    say("")
    for line in compaction_report.summary_lines(run):
        say(line)
    say(f"report: {report}")
    say(f"histogram: {compaction_report.render_png(run, report.with_suffix('.png'))}")
    say(f"read it: kafkalake.lake.read_table(spark, {stream.name!r})  (lake hours + landing hours not yet compacted)")
    return run


def _landed(sink: Path) -> int:
    try:
        return read_landing(sink, columns=["schema_id"]).num_rows
    except (OSError, ValueError):
        return 0
