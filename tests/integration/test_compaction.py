"""Compaction for real: real Spark, real files, kill -9 at every phase, a stream writing beside it.

Two kinds of landing:

* generated (``kafkalake.testing.lakegen``): Spark-file-sink-shaped Parquet + ``_spark_metadata``
  for hours in the past — fast, for the crash/corruption/idempotence cases (``--closed-before``
  states the hours are complete, as for an imported landing);
* streamed: records with past timestamps on a CreateTime topic through the real stream job
  (Parquet + Avro sinks), so "closed" comes from the stream's checkpoint and Kafka.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from kafkalake.compaction.plan import plan_table
from kafkalake.compaction.run import compact_table
from kafkalake.config import Settings
from kafkalake.lake.manifest import read_manifest
from kafkalake.lake.publish import CompactionError, Compactor, table_checksum
from kafkalake.lake.read import read_table, read_table_arrow
from kafkalake.lake.tables import Hour, resolve_table
from kafkalake.schema.registry import Registry
from kafkalake.testing.lakegen import generate_landing, hours_before
from tests.conftest import cli_env, run_cli
from tests.integration.lake_helpers import (
    arrow_state,
    create_time_topic,
    lake_dirs,
    past_stamps,
    produce_at,
    table_settings,
)

pytestmark = pytest.mark.integration

FUTURE = "2100-01-01T00:00:00+00:00"


def test_compaction_merges_verifies_publishes_and_a_second_run_does_nothing(
    platform_settings: Settings, tmp_path: Path, lake_spark
) -> None:
    settings = table_settings(platform_settings, tmp_path, target_file_mb=1, row_group_mb=1)
    stream, paths = resolve_table(settings, "fr")
    hours = hours_before(count=3)
    generate_landing(paths.landing, hours[:2], files_per_hour=6, rows_per_file=500)
    generate_landing(paths.landing, hours[2:], files_per_hour=6, rows_per_file=25_000, seed=8)  # ~1.5 MiB: 2 files
    before_spark = table_checksum(read_table(lake_spark, "fr", settings=settings))
    before_arrow = arrow_state(settings)
    assert before_spark[0] == before_arrow[0] == 6 * 500 * 2 + 6 * 25_000

    report = compact_table(lake_spark, settings, stream, paths, closed_before=datetime.now(UTC),
                           progress=lambda _: None)
    totals = report["totals"]
    assert totals["hours_compacted"] == 3 and totals["files_before"] == 18
    by_hour = {h["hour"]: h for h in report["hours"]}
    outputs = [by_hour[h.key]["output_files"] for h in hours]
    assert outputs == [max(1, math.ceil(by_hour[h.key]["source_bytes"] / 2**20)) for h in hours]  # ceil(bytes / 1 MiB)
    assert outputs[:2] == [1, 1] and outputs[2] >= 2
    assert totals["rows"] == before_arrow[0]
    # both readers: same rows, same content, no duplicates — now from the lake
    assert table_checksum(read_table(lake_spark, "fr", settings=settings)) == before_spark
    assert arrow_state(settings) == before_arrow
    assert before_arrow[2] == before_arrow[0]
    manifest = read_manifest(paths)
    assert sorted(manifest["hours"]) == [h.key for h in hours]
    # sorted within files by name, timestamp
    import pyarrow.parquet as pq

    first = pq.read_table(
        paths.lake / manifest["hours"][hours[0].key]["dir"] / manifest["hours"][hours[0].key]["files"][0]
    )
    names = first["name"].to_pylist()
    assert names == sorted(names)
    # row groups of compaction.row_group_mb, not one per file: readers skip and split by them
    big = manifest["hours"][hours[2].key]
    groups = [pq.ParquetFile(paths.lake / big["dir"] / name).metadata.num_row_groups for name in big["files"]]
    assert all(n >= 2 for n in groups), groups

    again = compact_table(lake_spark, settings, stream, paths, closed_before=datetime.now(UTC), progress=lambda _: None)
    assert again["totals"]["hours_compacted"] == 0
    assert {p["why"] for p in again["plan"]} == {"compacted, unchanged since"}
    assert read_manifest(paths)["hours"] == manifest["hours"]


def test_cluster_by_puts_each_devices_rows_side_by_side_sorted_by_sort_by(
    platform_settings: Settings, tmp_path: Path, lake_spark
) -> None:
    import pyarrow.parquet as pq

    settings = table_settings(platform_settings, tmp_path, cluster_by=["name"], sort_by=["timestamp"])
    stream, paths = resolve_table(settings, "fr")
    hour = hours_before(count=1)
    generate_landing(paths.landing, hour, files_per_hour=6, rows_per_file=2_000)
    before = table_checksum(read_table(lake_spark, "fr", settings=settings))

    compact_table(lake_spark, settings, stream, paths, closed_before=datetime.now(UTC), progress=lambda _: None)
    entry = read_manifest(paths)["hours"][hour[0].key]
    assert len(entry["files"]) == 1  # 12,000 rows, far below the target size: one file
    table = pq.read_table(paths.lake / entry["dir"] / entry["files"][0])
    names, stamps = table["name"].to_pylist(), table["timestamp"].to_pylist()
    runs = [i for i in range(len(names)) if i == 0 or names[i] != names[i - 1]]
    assert len(runs) == len(set(names)) > 1_000  # one run per device: clustered, not just partly grouped
    for start, end in zip(runs, [*runs[1:], len(names)], strict=True):
        assert stamps[start:end] == sorted(stamps[start:end])
    assert names != sorted(names)  # hash order, not name order (that is sort_by's job)
    assert table_checksum(read_table(lake_spark, "fr", settings=settings)) == before

    (tmp_path / "typo").mkdir()
    typo = table_settings(platform_settings, tmp_path / "typo", cluster_by=["device"])
    with pytest.raises(CompactionError, match=r"compaction.cluster_by of fr: no column\(s\) device \(columns: name, "):
        Compactor(lake_spark, resolve_table(typo, "fr")[0], paths,
                  Registry(typo.schemas_dir).latest("fridge").schema_json)


def test_checksum_is_order_independent_and_sees_nulls_and_values(lake_spark) -> None:
    rows = [(1, None, "a"), (None, 1, "b"), (2, 3, None)]
    df = lake_spark.createDataFrame(rows, "x INT, y INT, s STRING")
    base = table_checksum(df)
    assert base[0] == 3
    assert table_checksum(lake_spark.createDataFrame(list(reversed(rows)), "x INT, y INT, s STRING")) == base
    assert table_checksum(df.repartition(3)) == base
    # the same values with the nulls swapped between columns: xxhash64 alone skips nulls
    swapped = [(None, 1, "a"), (1, None, "b"), (2, 3, None)]
    assert table_checksum(lake_spark.createDataFrame(swapped, "x INT, y INT, s STRING")) != base
    changed = [(1, None, "a"), (None, 1, "b"), (2, 4, None)]
    assert table_checksum(lake_spark.createDataFrame(changed, "x INT, y INT, s STRING")) != base
    assert table_checksum(df.limit(2)) != base
    assert table_checksum(df.where("false")) == (0, "0-0")


def test_open_single_file_and_empty_hours_are_skipped(platform_settings: Settings, tmp_path: Path) -> None:
    settings = table_settings(platform_settings, tmp_path)
    stream, paths = resolve_table(settings, "fr")
    plan = plan_table(stream, paths, closed_before=datetime.now(UTC))
    assert plan.hours == [] and "no landing hours" in plan.describe()[-1]
    old, single, current = hours_before(count=2)[0], hours_before(count=2)[1], Hour.of(datetime.now(UTC))
    generate_landing(paths.landing, [old, current], files_per_hour=3, rows_per_file=10, batches=1)
    generate_landing(paths.landing, [single], files_per_hour=1, rows_per_file=10, batches=1, seed=9)
    plan = {h.hour: (h.action, h.why) for h in plan_table(stream, paths, closed_before=datetime.now(UTC)).hours}
    assert plan[old.key] == ("compact", "")
    assert plan[single.key] == ("skip", "a single file: nothing to merge")
    assert plan[current.key][0] == "skip" and plan[current.key][1].startswith("open")


def test_a_corrupted_source_file_fails_loudly_and_publishes_nothing(
    platform_settings: Settings, tmp_path: Path, lake_spark
) -> None:
    settings = table_settings(platform_settings, tmp_path)
    stream, paths = resolve_table(settings, "fr")
    hours = hours_before(count=2)
    generate_landing(paths.landing, hours, files_per_hour=3, rows_per_file=200)
    victim = sorted((paths.landing / "zone=landing" / hours[1].folder).glob("*.parquet"))[1]
    victim.write_bytes(b"\x00garbage" * (victim.stat().st_size // 8))
    with pytest.raises(CompactionError) as err:
        compact_table(lake_spark, settings, stream, paths, closed_before=datetime.now(UTC), progress=lambda _: None)
    message = str(err.value)
    assert "nothing published" in message and "\n" not in message
    assert not paths.manifest.exists()
    assert lake_dirs(paths) == set()
    assert not list(paths.journal_dir.glob("*.json"))


def test_kill_9_at_every_phase_leaves_old_or_new_state_and_the_next_run_finishes(
    platform_settings: Settings, tmp_path: Path
) -> None:
    settings = table_settings(platform_settings, tmp_path, reader_grace_minutes=0, landing_retention_hours=0)
    _stream, paths = resolve_table(settings, "fr")
    hours = hours_before(count=3)
    generate_landing(paths.landing, hours[:2], files_per_hour=4, rows_per_file=300, batches=2)
    original = arrow_state(settings)

    def compact(fault: str | None) -> subprocess.CompletedProcess[str]:
        extra = {"KAFKALAKE_FAULT": f"compact:{fault}"} if fault else {}
        return run_cli(settings, "compact", "fr", "--closed-before", FUTURE, env=cli_env(settings, **extra),
                       timeout=300)

    for phase in ("plan", "write", "verify"):
        result = compact(phase)
        assert result.returncode != 0, f"{phase}: the run was meant to die"
        assert arrow_state(settings) == original, f"after a crash in {phase}"
        assert not read_manifest(paths)["hours"], f"{phase}: nothing may be published before the publish phase"
    assert lake_dirs(paths), "the crashed write left its files behind (the next run must roll them back)"

    result = compact("publish")
    assert result.returncode != 0
    assert arrow_state(settings) == original  # now from the lake
    published = read_manifest(paths)["hours"]
    assert sorted(published) == [h.key for h in hours[:2]]
    # every rolled-back version is gone; only the published ones remain
    assert lake_dirs(paths) == {e["dir"] for e in published.values()}

    # a new closed hour arrives; the next run dies while cleaning up
    generate_landing(paths.landing, hours[2:], files_per_hour=4, rows_per_file=300, batches=1, seed=11)
    grown = arrow_state(settings)
    assert grown[0] == original[0] + 1200
    result = compact("cleanup")
    assert result.returncode != 0
    assert arrow_state(settings) == grown

    result = compact(None)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert "recovered: run" in result.stdout
    assert arrow_state(settings) == grown
    manifest = read_manifest(paths)
    assert sorted(manifest["hours"]) == [h.key for h in hours]
    assert lake_dirs(paths) == {e["dir"] for e in manifest["hours"].values()}
    assert not list(paths.journal_dir.glob("*.json"))
    # retention 0: landing files of compacted hours are gone; the commit log is untouched
    assert all(e.get("landing_removed") for e in manifest["hours"].values())
    assert not list((paths.landing / "zone=landing").rglob("*.parquet"))
    assert (paths.landing / "_spark_metadata" / "0").exists()
    assert arrow_state(settings) == grown


# --------------------------------------------------------------------------- streamed landings

def test_compaction_dag_compacts_parquet_and_avro_and_reports(
    kafka: Settings, airflow_env_ready: dict[str, str], tmp_path: Path
) -> None:
    import fastavro

    from kafkalake.schema.registry import Registry

    topic = create_time_topic(kafka)
    settings = table_settings(kafka, tmp_path, "fridge", topic=topic, sink_format="both")
    hours = hours_before(count=2)
    produced = produce_at(kafka, topic, past_stamps(hours, 2000))
    run = run_cli(settings, "stream", "run", "fridge", "--available-now", timeout=600)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]

    env = {**airflow_env_ready, **{k: v for k, v in settings.to_env().items()
                                   if k in ("KAFKALAKE_STREAMS_FILE", "KAFKALAKE_LAKE_ROOT", "KAFKALAKE_STATE_DIR")}}
    result = subprocess.run(
        [str(Path(sys.executable).parent / "airflow"), "dags", "test", "compaction",
         "-c", json.dumps({"table": "all"})],
        env=env, capture_output=True, text=True, timeout=600, check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0 and "state=success" in output, output[-6000:]
    assert "2 hour(s) compacted" in output  # the report task's log, per table
    reports = list((settings.state_dir / "reports" / "compaction").glob("*.json"))
    assert len(reports) == 1
    assert reports[0].with_suffix(".png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    doc = json.loads(reports[0].read_text())
    assert {(t["table"], t["format"]) for t in doc["tables"]} == {("fridge", "parquet"), ("fridge", "avro")}
    for table in doc["tables"]:
        assert table["totals"]["rows"] == produced
        assert table["totals"]["files_after"] < table["totals"]["files_before"]

    # Parquet lake read without Spark; Avro lake read by fastavro with the registry schema
    rows, _digest, unique = arrow_state(settings, "fridge")
    assert rows == unique == produced
    _stream, avro_paths = resolve_table(settings, "fridge.avro")
    reader = Registry(settings.schemas_dir).latest("fridge").parsed
    records = []
    for entry in read_manifest(avro_paths)["hours"].values():
        for name in entry["files"]:
            with open(avro_paths.lake / entry["dir"] / name, "rb") as handle:
                records += list(fastavro.reader(handle, reader_schema=reader))
    assert len(records) == produced
    assert sum(r["temperature"] is None for r in records) == sum(1 for i in range(produced) if i % 50 < 15)

    # a second run of the DAG is a no-op
    again = subprocess.run(
        [str(Path(sys.executable).parent / "airflow"), "dags", "test", "compaction",
         "-c", json.dumps({"dry_run": True})],
        env=env, capture_output=True, text=True, timeout=600, check=False,
    )
    assert again.returncode == 0, (again.stdout + again.stderr)[-4000:]
    assert "compacted, unchanged since" in again.stdout + again.stderr


def test_readers_stay_exact_while_compaction_runs_beside_a_live_stream(kafka: Settings, tmp_path: Path) -> None:
    topic = create_time_topic(kafka)
    settings = table_settings(kafka, tmp_path, "live", topic=topic, grace_minutes=0)
    closed = hours_before(count=2)
    closed_rows = produce_at(kafka, topic, past_stamps(closed, 1500))
    log = (tmp_path / "stream.log").open("w")
    driver = subprocess.Popen([sys.executable, "-m", "kafkalake.cli", "stream", "run", "live"],
                              env=cli_env(settings), stdout=log, stderr=subprocess.STDOUT)
    produced = [closed_rows]
    stop = threading.Event()
    problems: list[str] = []
    counts: list[int] = []

    def keep_producing() -> None:
        while not stop.is_set():
            produced[0] += produce_at(kafka, topic, [datetime.now(UTC)] * 200, seed=len(counts))
            time.sleep(0.5)

    def keep_reading() -> None:
        while not stop.is_set():
            try:
                table = read_table_arrow("live", settings=settings)
            except FileNotFoundError as exc:  # a reader must never see a vanished file
                problems.append(f"reader failed: {exc}")
                continue
            keys = list(zip(table["partition"].to_pylist(), table["offset"].to_pylist(), strict=True))
            in_closed = sum(1 for d, h in zip(table["dt"].to_pylist(), table["hour"].to_pylist(), strict=True)
                            if Hour(d, h) in closed)
            if len(keys) != len(set(keys)):
                problems.append(f"duplicates: {len(keys) - len(set(keys))}")
            if counts and in_closed not in (0, closed_rows):
                problems.append(f"closed hours have {in_closed} rows, expected {closed_rows}")
            counts.append(len(keys))
            time.sleep(0.2)

    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and len(read_table_arrow("live", settings=settings)) < closed_rows:
            assert driver.poll() is None, (tmp_path / "stream.log").read_text()[-3000:]
            time.sleep(1)
        threads = [threading.Thread(target=keep_producing), threading.Thread(target=keep_reading)]
        for thread in threads:
            thread.start()
        result = run_cli(settings, "compact", "live", timeout=300)
        time.sleep(2)
        stop.set()
        for thread in threads:
            thread.join(60)
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
        assert "2 hour(s) compacted" in result.stdout
        assert not problems, problems[:5]
        assert len(counts) > 3 and counts == sorted(counts)  # never goes backwards: nothing vanishes
        # the stream catches up: every produced record exactly once
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and arrow_state(settings, "live")[0] < produced[0]:
            time.sleep(1)
        rows, _digest, unique = arrow_state(settings, "live")
        assert rows == unique == produced[0]
        _stream, paths = resolve_table(settings, "live")
        assert sorted(read_manifest(paths)["hours"]) == [h.key for h in closed]
    finally:
        stop.set()
        run_cli(settings, "stream", "stop", "live")
        try:
            driver.wait(90)
        except subprocess.TimeoutExpired:
            driver.kill()
        log.close()
