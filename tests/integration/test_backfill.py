"""Backfill for real: a real broker, the real stream job into Iceberg, spark-submit, `airflow dags test`.

One stream for the module (table ``fr`` + ``fr_quarantine``): an hour of undecodable records
only, then two hours on a CreateTime topic (200 fridge records each, plus a few undecodable
ones at the start of the first), streamed into the tables by the stream job (in-process).
Each test damages the tables with Spark SQL and leaves them as it found them, which is the
property under test: a backfill brings back exactly what the stream wrote. Spark steps that
are not the subject of a test run in-process (``lake_spark``); the crash goes through the CLI
(spark-submit, killed), the DAG through ``airflow dags test``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from kafkalake.config import Settings
from kafkalake.lake.tables import Hour
from kafkalake.testing.lakegen import hours_before
from tests.conftest import cli_env, run_cli
from tests.integration.lake_helpers import (
    arrow_state,
    arrow_table,
    attach_catalog,
    create_time_topic,
    past_stamps,
    produce_at,
    table_settings,
)

pytestmark = pytest.mark.integration

#: undecodable payloads the stream and the backfill must both quarantine (not drop)
BAD_VALUES = [b"\x01not avro", b"\x00\x00", b"\x00\x00\x00\x27\x0f\x02\x04", b"", b"\x07\x07\x07\x07\x07\x07"]
PER_HOUR = 200
TABLES = ("fr", "fr_quarantine")


@dataclass
class Lake:
    settings: Settings
    topic: str
    catalog: str
    bad_only: Hour
    hours: list[Hour]
    good: int
    bad: int
    #: arrow_state of each table after the stream
    original: dict[str, tuple[int, str, int]]
    #: per-hour (rows, checksum) of each table after the stream
    checksums: dict[str, dict[Hour, tuple[int, str]]]


def produce_bad(settings: Settings, topic: str, hour: Hour, values: list[bytes]) -> int:
    """Undecodable records at the very start of ``hour`` (before its good ones, in time order)."""
    from kafkalake.produce.producer import make_producer

    producer = make_producer(settings.bootstrap_servers)
    for i, value in enumerate(values):
        producer.produce(topic, value=value, key=f"bad-{i}".encode(), timestamp=int(hour.start.timestamp() * 1000))
    assert producer.flush(30) == 0
    return len(values)


def hour_checksums(spark: Any, lake: Lake | str, table: str) -> dict[Hour, tuple[int, str]]:
    from kafkalake.lake.rewrite import checksums_by_hour

    catalog = lake if isinstance(lake, str) else lake.catalog
    df = spark.table(f"{catalog}.lake.{table}")
    return checksums_by_hour(df, df.columns)


def main_snapshot(spark: Any, lake: Lake, table: str) -> int:
    return spark.sql(f"SELECT snapshot_id FROM {lake.catalog}.lake.{table}.refs WHERE name = 'main'").first()[0]


def branches(spark: Any, lake: Lake, table: str) -> list[str]:
    return sorted(r[0] for r in spark.sql(f"SELECT name FROM {lake.catalog}.lake.{table}.refs "
                                          "WHERE type = 'BRANCH'").collect())


def assert_as_streamed(spark: Any, lake: Lake) -> None:
    for table in TABLES:
        assert arrow_state(lake.settings, table) == lake.original[table], table
        assert hour_checksums(spark, lake, table) == lake.checksums[table], table


@pytest.fixture(scope="module")
def lake(kafka: Settings, tmp_path_factory: pytest.TempPathFactory, lake_spark: Any) -> Lake:
    from kafkalake.stream.config import get_stream
    from kafkalake.stream.job import run_stream

    tmp = tmp_path_factory.mktemp("backfill")
    topic = create_time_topic(kafka)
    settings = table_settings(kafka, tmp, "fr", topic=topic)
    bad_only, *hours = hours_before(count=3)
    produce_bad(kafka, topic, bad_only, BAD_VALUES[:3])
    bad = produce_bad(kafka, topic, hours[0], BAD_VALUES)
    good = produce_at(kafka, topic, past_stamps(hours, PER_HOUR))
    catalog = attach_catalog(lake_spark, settings)
    # what other processes commit is seen at once (the Spark catalog caches loaded tables by default)
    lake_spark.conf.set(f"spark.sql.catalog.{catalog}.cache-enabled", "false")
    assert run_stream(lake_spark, settings, get_stream(settings, "fr"), available_now=True) == 0  # the stream job
    original = {t: arrow_state(settings, t) for t in TABLES}
    assert original["fr"][0] == original["fr"][2] == good == 2 * PER_HOUR
    assert original["fr_quarantine"][0] == original["fr_quarantine"][2] == bad + 3
    checksums = {t: hour_checksums(lake_spark, catalog, t) for t in TABLES}
    assert sorted(checksums["fr"]) == hours and sorted(checksums["fr_quarantine"]) == [bad_only, hours[0]]
    return Lake(settings, topic, catalog, bad_only, hours, good, bad, original, checksums)


def test_deleted_and_corrupted_hours_come_back_exactly_after_a_crash_and_a_second_run_changes_nothing(
    lake: Lake, lake_spark: Any
) -> None:
    from kafkalake.backfill.request import parse_request
    from kafkalake.backfill.run import run_backfill
    from kafkalake.backfill.verify import verify_report
    from kafkalake.lake.rewrite import hours_filter

    settings, (first, second) = lake.settings, lake.hours
    ident = f"{lake.catalog}.lake"
    lake_spark.sql(f"DELETE FROM {ident}.fr WHERE {hours_filter([first])}")  # an hour lost...
    lake_spark.sql(f"DELETE FROM {ident}.fr_quarantine WHERE {hours_filter([first])}")  # ...with its quarantine
    lake_spark.sql(f"UPDATE {ident}.fr SET name = 'corrupt' WHERE {hours_filter([second])} AND `offset` % 7 = 0")
    damaged = {t: main_snapshot(lake_spark, lake, t) for t in TABLES}
    assert hour_checksums(lake_spark, lake, "fr")[second] != lake.checksums["fr"][second]
    start, end = lake.bad_only.start.isoformat(), second.end.isoformat()

    # killed after its branch is written and verified, before the publish: main stays as it was
    crashed = run_cli(settings, "backfill", "fr", "--start", start, "--end", end,
                      env=cli_env(settings, KAFKALAKE_FAULT="backfill.verify"), timeout=600)
    assert crashed.returncode == 137, crashed.stdout[-3000:] + crashed.stderr[-3000:]  # SIGKILL
    assert "published" not in crashed.stdout
    assert {t: main_snapshot(lake_spark, lake, t) for t in TABLES} == damaged
    assert [b for b in branches(lake_spark, lake, "fr") if b.startswith("kafkalake_backfill_")], "no branch left"

    # the next run drops the stale branch and brings every row back, exactly
    lines: list[str] = []
    request = parse_request("fr", start=start, end=end)
    report = run_backfill(settings, request, spark_factory=lambda: lake_spark, progress=lines.append)
    assert any("dropped branch kafkalake_backfill_" in line for line in lines), lines
    assert branches(lake_spark, lake, "fr") == branches(lake_spark, lake, "fr_quarantine") == ["main"]
    assert_as_streamed(lake_spark, lake)
    assert report["tables"]["fr"]["hours_replaced"] == [first.key, second.key]
    assert report["tables"]["fr_quarantine"]["hours_replaced"] == [first.key]  # bad_only: unchanged, not rewritten
    assert [(h["hour"], h["rows"], h["quarantined"]) for h in report["hours"]] == [
        (lake.bad_only.key, 0, 3), (first.key, PER_HOUR, lake.bad), (second.key, PER_HOUR, 0)]
    assert report["records_outside_hours"] == 0
    checked = verify_report(settings, report)
    assert f"verify {first.key}: {PER_HOUR:,} rows == {PER_HOUR + lake.bad:,} offsets in range - " \
           f"{lake.bad:,} quarantined: ok" in checked
    assert f"verify {lake.bad_only.key}: 0 rows == 3 offsets in range - 3 quarantined: ok" in checked
    bad = [r for r in arrow_table(settings, "fr_quarantine").to_pylist() if r["timestamp"] >= first.start]
    assert sorted((r["value"] or b"") for r in bad) == sorted(BAD_VALUES)  # the raw bytes, back
    assert {r["reason"] for r in bad} >= {"BAD_MAGIC", "SHORT_HEADER", "EMPTY"}

    # the same backfill again: nothing differs, so no commit on either table
    published = {t: main_snapshot(lake_spark, lake, t) for t in TABLES}
    lines.clear()
    again = run_backfill(settings, request, spark_factory=lambda: lake_spark, progress=lines.append)
    assert {t: main_snapshot(lake_spark, lake, t) for t in TABLES} == published
    assert all(again["tables"][t]["hours_replaced"] == [] for t in TABLES)
    assert f"{ident}.fr: every hour already holds exactly these rows; no commit" in lines
    assert_as_streamed(lake_spark, lake)


def test_open_hours_and_partial_offset_ranges_are_refused_and_offsets_mode_replaces_whole_hours(
    lake: Lake, lake_spark: Any
) -> None:
    from kafkalake.backfill.plan import plan_backfill
    from kafkalake.backfill.request import BackfillError, parse_request
    from kafkalake.backfill.run import run_backfill

    settings, hour = lake.settings, lake.hours[1]
    snapshots = {t: main_snapshot(lake_spark, lake, t) for t in TABLES}
    grace = timedelta(minutes=10)
    # the stream has read everything: its watermark is "now", so the first open hour is the
    # one "now - grace" falls in — the previous hour during the first minutes of an hour
    first_open = {Hour.of(datetime.now(UTC) - grace).key}
    result = run_cli(settings, "backfill", "fr", "--start", hour.start.isoformat(),
                     "--end", Hour.of(datetime.now(UTC)).end.isoformat(), timeout=120)
    first_open.add(Hour.of(datetime.now(UTC) - grace).key)
    error = result.stderr.strip()
    assert result.returncode == 9 and "\n" not in error, error
    assert any(error.startswith(f"error: hour {key} ") for key in first_open), error
    assert "is still open to stream 'fr'" in error and "watermark" in error
    quarantine = run_cli(settings, "backfill", "fr_quarantine", "--start", hour.start.isoformat(),
                         "--end", hour.end.isoformat(), "--dry-run", timeout=120)
    assert quarantine.returncode == 9 and "is a quarantine table: name a table of stream 'fr'" in quarantine.stderr

    plan = plan_backfill(settings, parse_request("fr", start=hour.start, end=hour.end))
    (first, end), = [plan.hours[0].kafka_offsets[f"{lake.topic}-0"]]
    assert first > 0 and end > first  # the hour starts after the earlier hours' records on partition 0
    assert (plan.hours[0].table_rows, plan.hours[0].quarantine_rows) == (PER_HOUR, 0)  # from metadata
    partial = parse_request("fr", start=hour.start, end=hour.end,
                            starting_offsets={lake.topic: {"0": first + 1, "1": -2}},
                            ending_offsets={lake.topic: {"0": -1, "1": -1}})
    with pytest.raises(BackfillError, match=rf"offsets {lake.topic}-0 {first + 1}\.\.\d+ do not cover hours"):
        plan_backfill(settings, partial)

    everything = parse_request("fr", start=hour.start, end=hour.end,
                               starting_offsets={lake.topic: {"0": -2, "1": -2}},
                               ending_offsets={lake.topic: {"0": -1, "1": -1}})
    report = run_backfill(settings, everything, spark_factory=lambda: lake_spark, progress=lambda _: None)
    assert report["mode"] == "offsets"
    assert report["records_outside_hours"] == PER_HOUR + lake.bad + 3  # other hours: read, left untouched
    assert [(h["hour"], h["rows"], h["quarantined"]) for h in report["hours"]] == [(hour.key, PER_HOUR, 0)]
    assert {t: main_snapshot(lake_spark, lake, t) for t in TABLES} == snapshots  # already exact: no commit
    assert_as_streamed(lake_spark, lake)


def test_backfill_dag_dry_run_real_run_and_bad_params(
    lake: Lake, lake_spark: Any, airflow_env_ready: dict[str, str]
) -> None:
    from kafkalake.lake.rewrite import hours_filter

    settings, first = lake.settings, lake.hours[0]
    keep = ("KAFKALAKE_STREAMS_FILE", "KAFKALAKE_LAKE_ROOT", "KAFKALAKE_STATE_DIR", "KAFKALAKE_CATALOG",
            "KAFKALAKE_CATALOG_URI", "KAFKALAKE_WAREHOUSE", "KAFKALAKE_NAMESPACE")
    env = {**airflow_env_ready, **{k: v for k, v in settings.to_env().items() if k in keep}}

    def dags_test(conf: dict[str, object]) -> str:
        result = subprocess.run(
            [str(Path(sys.executable).parent / "airflow"), "dags", "test", "backfill", "-c", json.dumps(conf)],
            env=env, capture_output=True, text=True, timeout=600, check=False,
        )
        return f"rc={result.returncode}\n" + result.stdout + result.stderr

    lake_spark.sql(f"DELETE FROM {lake.catalog}.lake.fr_quarantine WHERE {hours_filter([first])}")
    damaged = {t: main_snapshot(lake_spark, lake, t) for t in TABLES}
    start, end = first.start.isoformat(), lake.hours[1].end.isoformat()
    dry = dags_test({"table": "fr", "start": start, "end": end, "dry_run": True})
    assert dry.startswith("rc=0") and "state=success" in dry, dry[-6000:]
    assert "est. records" in dry and f"{first.key}  " in dry  # the plan, per hour
    assert f"{PER_HOUR:,} rows + 0 quarantined" in dry  # what the tables hold now
    assert "dry run, nothing published" in dry
    assert {t: main_snapshot(lake_spark, lake, t) for t in TABLES} == damaged

    real = dags_test({"table": "fr", "start": start, "end": end, "dry_run": False})
    assert real.startswith("rc=0") and "state=success" in real, real[-6000:]
    for hour, quarantined in zip(lake.hours, (lake.bad, 0), strict=True):
        assert f"verify {hour.key}: {PER_HOUR:,} rows == {PER_HOUR + quarantined:,} offsets in range - " \
               f"{quarantined:,} quarantined: ok" in real, real[-6000:]
    assert main_snapshot(lake_spark, lake, "fr") == damaged["fr"]  # the table was exact: no commit
    assert main_snapshot(lake_spark, lake, "fr_quarantine") != damaged["fr_quarantine"]
    assert_as_streamed(lake_spark, lake)

    backwards = dags_test({"table": "fr", "start": end, "end": start, "dry_run": True})
    assert "state=success" not in backwards
    assert f"backfill refused: end {first.start:%Y-%m-%dT%H:%M:%SZ} is not after start" in backwards, \
        backwards[-4000:]
