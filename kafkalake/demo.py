"""The fridge-fleet scenario end to end, for `make demo` (after `kafkalake up`).

1. create the stream's topic (LogAppendTime), 2. unpause the `stream_<name>` supervisor DAG so
Airflow starts the Spark job, 3. run the fleet simulator (30 % of the devices stay on schema v1,
a little garbage mixed in), 4. wait until the landing zone has every valid record, 5. print
where the data landed, the per-version row counts and `kafkalake status`.
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


def _landed(sink: Path) -> int:
    try:
        return read_landing(sink, columns=["schema_id"]).num_rows
    except (OSError, ValueError):
        return 0
