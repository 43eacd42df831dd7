"""The fridge-fleet scenario end to end, for `make demo` (after `kafkalake up`).

1. create the stream's topic (LogAppendTime), 2. unpause the `stream_<name>` supervisor DAG so
Airflow starts the Spark job, 3. run the fleet simulator (30 % of the devices stay on schema v1,
a little garbage mixed in), 4. wait until the Iceberg table has every valid record, 5. print
the per-version row counts and the same table queried with DuckDB (pyiceberg) and Spark SQL;
6. compaction: the fleet's offline backlog (three past hours, replayed with the devices' own
timestamps) goes through the ``fridge_backlog`` stream in many small files, then
``kafkalake compact`` merges the closed hours and prints files before -> after.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC
from pathlib import Path
from typing import TYPE_CHECKING

from kafkalake.catalog.config import catalog_config
from kafkalake.catalog.reading import row_count, scan_arrow
from kafkalake.config import Settings
from kafkalake.errors import ServiceError
from kafkalake.kafka.topics import create_topic
from kafkalake.platform.local_airflow import airflow_env, dag_run_state
from kafkalake.produce.fleet import fleet_from_registry
from kafkalake.produce.producer import produce_parallel
from kafkalake.schema.registry import Registry
from kafkalake.stream.config import StreamConfig, get_stream, stream_paths

if TYPE_CHECKING:
    import threading

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

    table_name = stream.tables[stream.sink_formats[0]]
    before = row_count(settings, table_name)
    fleet = fleet_from_registry(Registry(settings.schemas_dir), subject=stream.subject, devices=200,
                                v1_fraction=0.3, garbage_fraction=garbage)
    latest = fleet.v2.schema_id != fleet.v1.schema_id
    say(
        f"==> fleet: {records:,} records from 200 fridges ("
        + (
            "60 still on schema v1, the rest on the latest version"
            if latest
            else "all on schema v1: v2 is not registered yet"
        )
        + f"), {garbage:.0%} malformed on purpose"
    )
    report = produce_parallel(
        bootstrap_servers=settings.bootstrap_servers, topic=stream.topics[0],
        shard_messages=lambda shard, shards: fleet.messages(records, shard=shard, shards=shards), workers=1,
    )
    report.raise_for_loss(stream.topics[0])
    say(
        f"produced {report.produced:,} in {report.seconds:.1f}s ({report.garbage:,} malformed); "
        f"waiting for {catalog_config(settings).identifier(table_name)}"
    )

    deadline = time.monotonic() + WAIT_S
    last_say = 0.0
    while True:
        landed = row_count(settings, table_name) - before
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

    _show_queries(settings, stream, say)
    say(f"status file: {paths.status_file}")
    return 0


def _show_queries(settings: Settings, stream: StreamConfig, say: Callable[[str], None]) -> None:
    """The landed rows, read as a user would: DuckDB over pyiceberg's scan, then Spark SQL."""
    from kafkalake.spark.submit import run_job

    config = catalog_config(settings)
    table = config.identifier(stream.tables[stream.sink_formats[0]])
    say("")
    say(f"==> {table} (Iceberg) with DuckDB, through pyiceberg (no JVM):")
    # columns every version of the subject has (the demo starts with v1 only: no temperature yet)
    fridge = scan_arrow(settings, stream.tables[stream.sink_formats[0]], columns=("schema_version", "name", "action"))
    query = ("SELECT schema_version, count(*) AS rows, count(DISTINCT name) AS fridges, "
             "count(*) FILTER (WHERE action = 'open') AS opened FROM fridge GROUP BY 1 ORDER BY 1")
    say(f"  duckdb> {query}")
    for row in _duckdb_rows(fridge, query):
        say(f"    {row}")
    say(f"  quarantine table {config.identifier(stream.quarantine_table)}: "
        f"{row_count(settings, stream.quarantine_table):,} rows (raw bytes + reason code)")
    statement = f"SELECT reason, count(*) AS n FROM {config.identifier(stream.quarantine_table)} GROUP BY reason"
    say(f"==> the quarantine table with Spark SQL (`kafkalake spark sql \"{statement}\"`):")
    result = run_job(settings, "sql", [statement])
    if result.returncode != 0:
        raise ServiceError(f"the Spark SQL query failed (exit {result.returncode}); see the output above")


def _duckdb_rows(fridge: object, query: str) -> list[tuple]:
    import duckdb

    con = duckdb.connect()
    con.register("fridge", fridge)
    return con.execute(query).fetchall()


def run_compaction_demo(settings: Settings, *, stream_name: str = "fridge_backlog", per_hour: int = 20_000,
                        say: Callable[[str], None] = print) -> dict:
    """Backlog of three past hours -> many small files -> ``kafkalake compact`` -> report."""
    import json
    from datetime import datetime, timedelta

    from kafkalake.compaction import report as compaction_report
    from kafkalake.compaction.run import report_dir
    from kafkalake.lake.tables import Hour, table_names
    from kafkalake.produce.producer import produce_timed
    from kafkalake.spark.submit import run_job, stream_conf

    stream = get_stream(settings, stream_name)
    topic = stream.topics[0]
    created = create_topic(settings.bootstrap_servers, topic, config={"message.timestamp.type": "CreateTime"})
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    hours = [Hour.of(now - timedelta(hours=h)) for h in (4, 3, 2)]
    if created:
        fleet = fleet_from_registry(
            Registry(settings.schemas_dir), subject=stream.subject, devices=200, v1_fraction=0.3
        )
        say(
            f"==> backlog: {per_hour * 3:,} buffered readings for {hours[0].key}..{hours[-1].key} -> {topic} "
            "(CreateTime)"
        )
        produce_timed(settings.bootstrap_servers, topic, (
            (key, value, (hours[i // per_hour].start + timedelta(seconds=3600 * (i % per_hour) / per_hour)).timestamp())
            for i, (key, value, _sid, _kind) in enumerate(fleet.messages(per_hour * 3))
        ))
    say(f"==> stream {stream.name}: --available-now, max_offsets_per_trigger={stream.max_offsets_per_trigger} "
        "(small files on purpose: the notebook's 'files too small' problem)")
    result = run_job(settings, "stream_ingest", [stream.name, "--available-now"], conf=stream_conf(stream))
    if result.returncode != 0:
        raise ServiceError(f"stream {stream.name} failed (exit {result.returncode}); see the output above")
    report = report_dir(settings) / f"demo-{datetime.now(UTC):%Y%m%dT%H%M%S}.json"
    tables = table_names([stream])
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
    say(f"read it: SELECT * FROM {catalog_config(settings).identifier(stream.name)}  (any Iceberg engine)")
    return run


def seed_demo_registry(settings: Settings, say: Callable[[str], None] = print) -> bool:
    """A registry for the demo with the first version of each subject only, so the demo can
    roll v1 -> v2 out live (the git registry already has v2). True if it was created now."""
    if (settings.schemas_dir / "_registry.json").exists():
        return False
    source = Registry(settings.home / "schemas")
    target = Registry(settings.schemas_dir)
    for subject in source.subjects():
        target.register(subject, source.get(subject, 1).schema_json)
    say(f"demo registry: {settings.schemas_dir} (v1 of {', '.join(source.subjects())}; the rollout registers v2)")
    return True


def run_rollout_demo(settings: Settings, *, stream_name: str = "fridge", seconds: float = 20.0, rate: int = 500,
                     say: Callable[[str], None] = print) -> dict:
    """The notebook's fridge rollout under live traffic: v1 fridges keep sending while the
    schema_migration DAG registers v2 and rolls the stream; then new fridges send v2."""
    import threading

    stream = get_stream(settings, stream_name)
    registry = Registry(settings.schemas_dir)
    v2_text = (settings.home / "schemas" / stream.subject / "v2.avsc").read_text()
    if registry.latest(stream.subject).version >= 2:
        say(f"rollout: {stream.subject} is already at v{registry.latest(stream.subject).version} in "
            f"{settings.schemas_dir}; the schema_migration DAG would be a no-op")
    stop = threading.Event()
    sent = {1: 0, 2: 0}

    def fleet(version: int) -> threading.Thread:
        thread = threading.Thread(target=_produce_at_rate, daemon=True,
                                  args=(settings, registry, stream, version, rate, stop, sent))
        thread.start()
        return thread

    before = row_count(settings, stream.name)
    threads = [fleet(1)]
    say(f"==> rollout: 60 old fridges keep sending v1 ({rate}/s); schema_migration registers v2 and rolls "
        f"{stream.name}")
    try:
        _run_migration_dag(settings, stream, v2_text, say)
    except BaseException:
        stop.set()
        raise
    threads.append(fleet(2))
    say(f"==> 140 new fridges now send v2 (with temperature) for {seconds:.0f}s, the old ones still v1")
    time.sleep(seconds)
    stop.set()
    for thread in threads:
        thread.join(60)
    expected = before + sent[1] + sent[2]
    deadline = time.monotonic() + WAIT_S
    while (table := scan_arrow(settings, stream.name)).num_rows < expected:
        if time.monotonic() > deadline:
            raise ServiceError(f"only {table.num_rows:,} of {expected:,} rows in {stream.name}: see `kafkalake status`")
        time.sleep(2)
    counts = table.group_by("schema_version").aggregate([("schema_version", "count")]).to_pylist()
    with_temp = table.filter(table["temperature"].is_valid()).num_rows if "temperature" in table.column_names else 0
    by_version = sorted(counts, key=lambda c: c["schema_version"])
    say("")
    say(f"table {catalog_config(settings).identifier(stream.name)}: {table.num_rows:,} rows, "
        f"= {before:,} before + {sent[1] + sent[2]:,} sent during the rollout, nothing lost")
    say("  schema: " + ", ".join(f"{f.name}:{f.type}" for f in table.schema))
    say("  rows by writer version: " + ", ".join(f"v{c['schema_version']}: {c['schema_version_count']:,}"
                                                 for c in by_version))
    say(f"  rows with a temperature: {with_temp:,} (v1 rows read v2's default for it: null)")
    return {"rows": table.num_rows, "by_version": counts}


def _produce_at_rate(settings: Settings, registry: Registry, stream: StreamConfig, version: int, rate: int,
                     stop: threading.Event, sent: dict[int, int]) -> None:
    """Fridges on schema ``version`` send ``rate`` records/s until ``stop`` (counted in ``sent``)."""
    from kafkalake.produce.fleet import FridgeFleet
    from kafkalake.produce.producer import make_producer
    from kafkalake.wire.encoder import FramedEncoder

    encoder = FramedEncoder.for_version(registry.get(stream.subject, version))
    fleet = FridgeFleet(v1=encoder, v2=encoder, devices=60 if version == 1 else 140,
                        v1_fraction=1.0 if version == 1 else 0.0, seed=version)
    producer = make_producer(settings.bootstrap_servers)
    records = fleet.messages(100_000_000)
    while not stop.is_set():
        tick = time.monotonic()
        for _ in range(rate // 10):
            key, value, _sid, _kind = next(records)
            producer.produce(stream.topics[0], value=value, key=key)
        sent[version] += rate // 10
        producer.poll(0)
        time.sleep(max(0.0, 0.1 - (time.monotonic() - tick)))
    producer.flush(60)


def _run_migration_dag(settings: Settings, stream: StreamConfig, schema_text: str, say: Callable[[str], None]) -> None:
    """Trigger the schema_migration DAG with ``schema_text`` and wait for its run to succeed."""
    import json
    import uuid

    env = airflow_env(settings)
    airflow = str(Path(sys.executable).parent / "airflow")
    run_id = f"demo_rollout_{uuid.uuid4().hex[:6]}"
    conf = json.dumps({"subject": stream.subject, "schema": schema_text})
    for args in (["dags", "unpause", "schema_migration"],
                 ["dags", "trigger", "schema_migration", "--run-id", run_id, "-c", conf]):
        result = subprocess.run([airflow, *args], env=env, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            detail = (result.stderr or result.stdout).strip()[-300:]
            raise ServiceError(f"`airflow {' '.join(args[:3])}` failed: {detail}")
    deadline = time.monotonic() + WAIT_S
    state = None
    while state not in ("success", "failed"):
        if time.monotonic() > deadline:
            raise ServiceError(f"schema_migration run {run_id} did not finish in {WAIT_S:.0f}s: see the Airflow UI")
        time.sleep(5)
        state = dag_run_state(env, "schema_migration", run_id)
        say(f"    ... schema_migration {run_id}: {state or 'queued'}")
    if state != "success":
        raise ServiceError(f"schema_migration run {run_id} failed: see its task logs in the Airflow UI")
