"""Backfill for real: a real broker, the real stream job, spark-submit, `airflow dags test`.

One table for the module: two past hours on a CreateTime topic (1,000 fridge records each, plus
a few undecodable ones in the first) and, an hour before them, an hour of undecodable records
only; streamed into landing and compacted into the lake. Each test leaves the table's content
as it found it (a backfill replaces hours with the same rows), which is itself the property
under test. Spark-heavy steps that are not the subject of a test run in-process (``lake_spark``);
the backfills under test go through the CLI (spark-submit) and ``airflow dags test``.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from kafkalake.config import Settings
from kafkalake.lake.landing import fingerprint, landing_hours
from kafkalake.lake.manifest import read_manifest
from kafkalake.lake.tables import Hour, resolve_table
from kafkalake.testing.lakegen import hours_before
from tests.conftest import run_cli
from tests.integration.lake_helpers import (
    arrow_state,
    create_time_topic,
    lake_dirs,
    past_stamps,
    produce_at,
    table_settings,
)

pytestmark = pytest.mark.integration

#: undecodable payloads the stream and the backfill must both quarantine (not drop)
BAD_VALUES = [b"\x01not avro", b"\x00\x00", b"\x00\x00\x00\x27\x0f\x02\x04", b"", b"\x07\x07\x07\x07\x07\x07"]


@dataclass
class Table:
    settings: Settings
    topic: str
    hours: list[Hour]
    bad_only: Hour
    good: int
    bad: int
    original: tuple[int, str, int]


def produce_bad(settings: Settings, topic: str, hour: Hour, values: list[bytes]) -> int:
    """Undecodable records at the very start of ``hour`` (before its good ones, in time order)."""
    from kafkalake.produce.producer import make_producer

    producer = make_producer(settings.bootstrap_servers)
    for i, value in enumerate(values):
        producer.produce(topic, value=value, key=f"bad-{i}".encode(), timestamp=int(hour.start.timestamp() * 1000))
    assert producer.flush(30) == 0
    return len(values)


@pytest.fixture(scope="module")
def table(kafka: Settings, tmp_path_factory: pytest.TempPathFactory, lake_spark) -> Table:
    from kafkalake.compaction.run import compact_table
    from kafkalake.stream.watermark import closed_before

    tmp = tmp_path_factory.mktemp("backfill")
    topic = create_time_topic(kafka)
    settings = table_settings(kafka, tmp, "fr", topic=topic)
    bad_only, *hours = hours_before(count=4)[:3]
    produce_bad(kafka, topic, bad_only, BAD_VALUES[:3])
    bad = produce_bad(kafka, topic, hours[0], BAD_VALUES)
    good = produce_at(kafka, topic, past_stamps(hours, 1000))
    run = run_cli(settings, "stream", "run", "fr", "--available-now", timeout=600)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    stream, paths = resolve_table(settings, "fr")
    compact_table(lake_spark, settings, stream, paths, closed_before=closed_before(settings, stream, paths),
                  progress=lambda _: None)
    manifest = read_manifest(paths)
    assert sorted(manifest["hours"]) == [h.key for h in hours], manifest["hours"].keys()
    original = arrow_state(settings)
    assert original[0] == original[2] == good
    return Table(settings, topic, hours, bad_only, good, bad, original)


def quarantine_runs(settings: Settings, hour: Hour) -> list[Path]:
    return sorted((settings.lake_root / "quarantine" / "parquet" / "fr" / hour.folder).glob("run=*"))


def test_a_deleted_lake_hour_comes_back_from_kafka_and_a_second_run_changes_nothing(table: Table, lake_spark) -> None:
    import pyarrow.dataset as ds

    from kafkalake.backfill.request import parse_request
    from kafkalake.backfill.run import run_backfill
    from kafkalake.compaction.plan import plan_table
    from kafkalake.stream.watermark import closed_before

    settings, victim = table.settings, table.hours[0]
    _stream, paths = resolve_table(settings, "fr")
    before = read_manifest(paths)["hours"][victim.key]
    shutil.rmtree(paths.lake / before["dir"])  # the hour's lake files are lost
    args = ("backfill", "fr", "--start", victim.start.isoformat(), "--end", victim.end.isoformat())

    first = run_cli(settings, *args, timeout=600)
    assert first.returncode == 0, first.stdout[-4000:] + first.stderr[-4000:]
    assert arrow_state(settings) == table.original  # every row back, same content, no duplicates
    entry = read_manifest(paths)["hours"][victim.key]
    assert entry["origin"] == "backfill" and entry["rows"] == before["rows"] and entry["checksum"] == before["checksum"]
    assert entry["source_fingerprint"].startswith(f"kafka:{table.topic}-0=")
    assert entry["quarantine"]["rows"] == table.bad
    assert f"verify {victim.key}: {before['rows']:,} rows == {before['rows'] + table.bad:,} offsets in range - " \
           f"{table.bad:,} quarantined: ok" in first.stdout
    runs = quarantine_runs(settings, victim)
    assert len(runs) == 1
    bad = ds.dataset(str(runs[0]), format="parquet").to_table()
    assert bad.num_rows == table.bad and sorted(bad["raw_value"].to_pylist()) == sorted(BAD_VALUES)
    assert set(bad["reason"].to_pylist()) >= {"BAD_MAGIC", "SHORT_HEADER", "EMPTY"}

    # the same backfill again (in-process: the job's own body, without a second JVM start)
    second = run_backfill(settings, parse_request("fr", start=victim.start, end=victim.end),
                          spark_factory=lambda: lake_spark, progress=lambda _: None)
    assert second["hours"][0]["rows"] == before["rows"]
    assert arrow_state(settings) == table.original
    again = read_manifest(paths)["hours"][victim.key]
    assert (again["rows"], again["checksum"], again["origin"]) == (entry["rows"], entry["checksum"], "backfill")
    assert again["run_id"] != entry["run_id"]
    assert [p.name for p in quarantine_runs(settings, victim)] == [f"run={again['run_id']}"]  # replaced, not doubled
    # the compaction planner leaves the backfilled hour alone (its landing has not changed)
    stream, paths = resolve_table(settings, "fr")
    plan = {h.hour: h.why
            for h in plan_table(stream, paths, closed_before=closed_before(settings, stream, paths)).hours}
    assert plan[victim.key] == "compacted, unchanged since"
    assert again["landing_fingerprint"] == fingerprint(landing_hours(paths)[victim])


def test_an_hour_still_open_to_the_stream_is_refused_and_nothing_changes(table: Table) -> None:
    settings = table.settings
    stream, paths = resolve_table(settings, "fr")
    manifest_bytes, dirs = paths.manifest.read_bytes(), lake_dirs(paths)
    grace = timedelta(minutes=stream.compaction.grace_minutes)
    # the stream has read everything: its watermark is "now", so the first open hour is the
    # one "now - grace" falls in — the previous hour during the first minutes of an hour
    first_open = {Hour.of(datetime.now(UTC) - grace).key}
    current = Hour.of(datetime.now(UTC))
    result = run_cli(settings, "backfill", "fr", "--start", table.hours[1].start.isoformat(),
                     "--end", current.end.isoformat(), timeout=120)
    first_open.add(Hour.of(datetime.now(UTC) - grace).key)
    assert result.returncode != 0
    error = result.stderr.strip()
    assert any(error.startswith(f"error: hour {key} ") for key in first_open) and "\n" not in error, error
    assert "is still open to stream 'fr'" in error
    assert "watermark" in error
    assert paths.manifest.read_bytes() == manifest_bytes and lake_dirs(paths) == dirs

    unaligned = run_cli(settings, "backfill", "fr", "--start", "2026-01-01T05:30Z", "--end", "2026-01-01T07:00Z")
    assert unaligned.returncode != 0 and "not on a whole hour" in unaligned.stderr
    backwards = run_cli(settings, "backfill", "fr", "--start", "2026-01-01T07:00Z", "--end", "2026-01-01T05:00Z")
    assert backwards.returncode != 0 and "is not after start" in backwards.stderr
    assert paths.manifest.read_bytes() == manifest_bytes


def test_offsets_mode_replaces_whole_hours_and_refuses_a_partial_range(table: Table, lake_spark) -> None:
    from kafkalake.backfill.plan import plan_backfill
    from kafkalake.backfill.request import BackfillError, parse_request
    from kafkalake.backfill.run import run_backfill
    from kafkalake.backfill.verify import verify_report

    settings, hour = table.settings, table.hours[1]
    _stream, paths = resolve_table(settings, "fr")
    plan = plan_backfill(settings, parse_request("fr", start=hour.start, end=hour.end))
    (first, end), = [plan.hours[0].kafka_offsets[f"{table.topic}-0"]]
    assert first > 0 and end > first  # hour 1 starts after hour 0's records on partition 0

    partial = parse_request("fr", start=hour.start, end=hour.end,
                            starting_offsets={table.topic: {"0": first + 1, "1": -2}},
                            ending_offsets={table.topic: {"0": -1, "1": -1}})
    with pytest.raises(BackfillError, match=rf"offsets {table.topic}-0 {first + 1}\.\.\d+ do not cover hours"):
        plan_backfill(settings, partial)

    everything = parse_request("fr", start=hour.start, end=hour.end,
                               starting_offsets={table.topic: {"0": -2, "1": -2}},
                               ending_offsets={table.topic: {"0": -1, "1": -1}})
    report = run_backfill(settings, everything, spark_factory=lambda: lake_spark, progress=lambda _: None)
    assert report["mode"] == "offsets"
    assert report["records_outside_hours"] == table.good // 2 + table.bad + 3  # other hours: read, left untouched
    (done,) = report["hours"]
    assert (done["hour"], done["rows"], done["quarantined"]) == (hour.key, table.good // 2, 0)
    assert any(line.endswith(": ok") for line in verify_report(settings, report))
    assert arrow_state(settings) == table.original
    assert read_manifest(paths)["hours"][hour.key]["origin"] == "backfill"

    # an hour of undecodable records only: no lake version, its records in quarantine (once, re-run or not)
    for _ in range(2):
        empty = run_backfill(settings, parse_request("fr", start=table.bad_only.start, end=table.bad_only.end),
                             spark_factory=lambda: lake_spark, progress=lambda _: None)
        assert [(h["action"], h["rows"], h["quarantined"]) for h in empty["hours"]] == [("quarantine only", 0, 3)]
        assert (f"verify {table.bad_only.key}: 0 rows == 3 offsets in range - 3 quarantined: ok"
                in verify_report(settings, empty))
        assert table.bad_only.key not in read_manifest(paths)["hours"]
        assert [p.name for p in quarantine_runs(settings, table.bad_only)] == [f"run={empty['run_id']}"]
    assert arrow_state(settings) == table.original


def test_backfill_dag_dry_run_real_run_and_bad_params(table: Table, airflow_env_ready: dict[str, str]) -> None:
    settings = table.settings
    _stream, paths = resolve_table(settings, "fr")
    env = {**airflow_env_ready, **{k: v for k, v in settings.to_env().items()
                                   if k in ("KAFKALAKE_STREAMS_FILE", "KAFKALAKE_LAKE_ROOT", "KAFKALAKE_STATE_DIR")}}

    def dags_test(conf: dict[str, object]) -> str:
        result = subprocess.run(
            [str(Path(sys.executable).parent / "airflow"), "dags", "test", "backfill", "-c", json.dumps(conf)],
            env=env, capture_output=True, text=True, timeout=600, check=False,
        )
        return f"rc={result.returncode}\n" + result.stdout + result.stderr

    start, end = table.hours[0].start.isoformat(), table.hours[1].end.isoformat()
    manifest_bytes = paths.manifest.read_bytes()
    dry = dags_test({"table": "fr", "source": "kafka", "start": start, "end": end, "dry_run": True})
    assert dry.startswith("rc=0") and "state=success" in dry, dry[-6000:]
    assert "est. records" in dry and f"{table.hours[0].key}  " in dry  # the plan, per hour
    assert "dry run, nothing published" in dry
    assert paths.manifest.read_bytes() == manifest_bytes

    real = dags_test({"table": "fr", "source": "landing", "start": start, "end": end, "dry_run": False})
    assert real.startswith("rc=0") and "state=success" in real, real[-6000:]
    for hour, quarantined in zip(table.hours, (table.bad, 0), strict=True):
        rows = table.good // 2
        assert f"verify {hour.key}: {rows:,} rows == {rows + quarantined:,} offsets in range - " \
               f"{quarantined:,} quarantined: ok" in real, real[-6000:]
    assert arrow_state(settings) == table.original
    manifest = read_manifest(paths)["hours"]
    assert {e["origin"] for e in manifest.values()} == {"backfill"}
    landing = landing_hours(paths)
    assert all(manifest[h.key]["source_fingerprint"] == fingerprint(landing[h]) for h in table.hours)

    backwards = dags_test({"table": "fr", "start": end, "end": start, "dry_run": True})
    assert "state=success" not in backwards
    assert f"backfill refused: end {table.hours[0].start:%Y-%m-%dT%H:%M:%SZ} is not after start" in backwards, \
        backwards[-4000:]
    escape = dags_test({"table": "../etc", "start": start, "end": end})
    assert "state=success" not in escape and "../etc" in escape, escape[-4000:]
    assert "is not one of" in escape, escape[-4000:]
    assert read_manifest(paths)["hours"] == manifest
