"""Compaction for real: real Spark and Iceberg, kill -9 at every phase, a live stream beside it.

Two kinds of tables:

* generated (``kafkalake.testing.lakegen``): the stream's decode and tables, many small files
  in past hours, made in one Spark job — for the merge, verification and crash cases
  (``--closed-before`` states the hours are complete, as for a table no stream feeds);
* streamed: records with past timestamps on a CreateTime topic through the real stream job
  (Parquet + Avro tables), so "closed" comes from the stream's checkpoint and Kafka.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from kafkalake.catalog.config import catalog_config, open_catalog
from kafkalake.compaction.merge import UNION_PARTITIONING, merge_hours, merge_input, session_conf, staged_hours
from kafkalake.compaction.plan import hour_files, plan_table
from kafkalake.compaction.run import OrphanSweeps, compact_table
from kafkalake.config import Settings
from kafkalake.lake.rewrite import (
    VerifyError,
    checksums_by_hour,
    hours_filter,
    plain_parquet_files,
    replace_hours,
    table_checksum,
    verify_hours,
)
from kafkalake.lake.tables import Hour, resolve_table
from kafkalake.testing.lakegen import generate_table, hours_before
from tests.conftest import cli_env, failure_lines, run_cli
from tests.integration.lake_helpers import (
    arrow_state,
    attach_catalog,
    create_time_topic,
    past_stamps,
    produce_at,
    table_settings,
    wait_for,
)

pytestmark = pytest.mark.integration

FUTURE = "2100-01-01T00:00:00+00:00"


def files_per_hour(settings: Settings, table: str) -> dict[str, int]:
    return {h.key: len(files) for h, files in hour_files(settings, table)[1].items()}


def loaded(settings: Settings, table: str) -> Any:
    return open_catalog(settings).load_table(f"{catalog_config(settings).namespace}.{table}")


def snapshot_of(settings: Settings, table: str) -> int:
    return loaded(settings, table).current_snapshot().snapshot_id


def main_history(settings: Settings, table: str) -> list[dict[str, str]]:
    """Summaries of the snapshots of ``main``, newest first (dropped branches' snapshots left out)."""
    table_ = loaded(settings, table)
    out, snapshot = [], table_.current_snapshot()
    while snapshot is not None:
        out.append(dict(snapshot.summary.additional_properties, operation=snapshot.summary.operation.value))
        parent = snapshot.parent_snapshot_id
        snapshot = table_.snapshot_by_id(parent) if parent is not None else None
    return out


def branches(settings: Settings, table: str) -> list[str]:
    refs = loaded(settings, table).metadata.refs
    return sorted(name for name, ref in refs.items()
                  if name.startswith("kafkalake_") and ref.snapshot_ref_type.value == "branch")


def kafkalake_refs(settings: Settings, table: str) -> list[str]:
    """Every branch or tag a run made."""
    return sorted(name for name in loaded(settings, table).metadata.refs if name.startswith("kafkalake_"))


def spark_state(spark: Any, settings: Settings, table: str) -> tuple[int, str]:
    return table_checksum(spark.table(catalog_config(settings).identifier(table)))


def test_compaction_merges_each_closed_hour_of_every_table_and_a_second_run_does_nothing(
    platform_settings: Settings, tmp_path: Path, lake_spark
) -> None:
    import pyarrow.parquet as pq

    settings = table_settings(platform_settings, tmp_path, sink_format="both", cluster_by=["name"],
                              sort_by=["timestamp"])
    attach_catalog(lake_spark, settings)
    closed = hours_before(count=2)
    current = Hour.of(datetime.now(UTC))
    made = generate_table(lake_spark, settings, "fr", [*closed, current], files_per_hour=4, rows_per_hour=1500,
                          garbage=True)
    assert made.tables["fr_quarantine"] > 0
    tables = ("fr", "fr_avro", "fr_quarantine")
    before = {t: spark_state(lake_spark, settings, t) for t in tables}
    closed_rows = {t: sum(f.rows for h in closed for f in hour_files(settings, t)[1][h]) for t in tables}
    arrow_before = {t: arrow_state(settings, t) for t in ("fr", "fr_quarantine")}  # pyiceberg reads no Avro files

    reports = {}
    for table in tables:
        stream, ref = resolve_table(settings, table)
        reports[table] = compact_table(lake_spark, settings, stream, ref, closed_before=datetime.now(UTC),
                                       progress=lambda _: None)
    for table, report in reports.items():
        assert report["totals"]["hours_compacted"] == 2 and report["totals"]["files_before"] == 8, table
        assert report["totals"]["files_after"] == 2 and report["totals"]["rows"] == closed_rows[table] > 0
        assert [(h["hour"], h["output_files"], h["output_rows"] == h["rows"]) for h in report["hours"]] == [
            (h.key, 1, True) for h in closed]
        assert [p["why"] for p in report["plan"] if p["action"] == "skip"] == ["open: the stream may still write it"]
        assert files_per_hour(settings, table) == {closed[0].key: 1, closed[1].key: 1, current.key: 4}
        assert spark_state(lake_spark, settings, table) == before[table], table  # same rows, same content
    for table, state in arrow_before.items():
        assert arrow_state(settings, table) == state and state[0] == state[2]  # every offset once
    # clustered by name (one run of rows per device), sorted by timestamp within each run
    listing = open_catalog(settings).load_table("lake.fr").inspect.files().to_pylist()
    merged = max(listing, key=lambda f: f["record_count"])["file_path"]
    names = pq.read_table(merged.removeprefix("file:"), columns=["name", "timestamp"]).to_pydict()
    runs = [i for i, n in enumerate(names["name"]) if i == 0 or n != names["name"][i - 1]]
    assert len(runs) == len(set(names["name"])) == 50
    for start, end in zip(runs, [*runs[1:], len(names["name"])], strict=True):
        assert names["timestamp"][start:end] == sorted(names["timestamp"][start:end])

    snapshots = {t: snapshot_of(settings, t) for t in tables}
    for table in tables:
        assert reports[table]["orphan_files_removed"] == 0  # the first run swept the table
        stream, ref = resolve_table(settings, table)
        again = compact_table(lake_spark, settings, stream, ref, closed_before=datetime.now(UTC),
                              progress=lambda _: None)
        assert again["totals"]["hours_compacted"] == 0
        assert again["orphan_files_removed"] is None and again["orphan_sweep_due_at"] > datetime.now(UTC).isoformat()
        assert [p["why"].split(":")[0] for p in again["plan"]] == ["compacted", "compacted", "open"]
    assert {t: snapshot_of(settings, t) for t in tables} == snapshots  # a no-op commits nothing


def test_each_hour_gets_its_planned_file_count_in_one_commit(
    platform_settings: Settings, tmp_path: Path, lake_spark, caplog: pytest.LogCaptureFixture
) -> None:
    settings = table_settings(platform_settings, tmp_path)
    attach_catalog(lake_spark, settings)
    hours = hours_before(count=2)
    generate_table(lake_spark, settings, "fr", hours, files_per_hour=6, rows_per_hour=600)
    stream, ref = resolve_table(settings, "fr")
    plan = plan_table(settings, stream, ref, closed_before=datetime.now(UTC))
    plan.hours[0].outputs, plan.hours[1].outputs = 3, 2  # as a larger hour would plan
    before = spark_state(lake_spark, settings, "fr")
    commits = len(open_catalog(settings).load_table("lake.fr").snapshots())
    # one write task per output file, no shuffle: Spark 4 would zip the union's one-task hours
    # into one task for all hours, were the union's partitioning on
    ident = catalog_config(settings).identifier("fr")
    # the hours' files planned once and staged per hour read the same rows as the table per hour
    table_cache = lake_spark._jvm.org.apache.iceberg.spark.SparkTableCache.get()
    with staged_hours(lake_spark, catalog_config(settings), "fr", plan.snapshot_id, hours) as staged:
        assert staged is not None and sorted(staged.ids) == hours
        assert all(map(table_cache.contains, staged.ids.values()))
        for outputs, tasks in (((3, 2), 5), ((1, 1), 2)):
            plan.hours[0].outputs, plan.hours[1].outputs = outputs
            checksums = []
            for source in (None, staged):
                rows, _measured = merge_input(lake_spark, ident, stream, ref, plan.to_compact, plan.snapshot_id,
                                              staged=source)
                with session_conf(lake_spark, {UNION_PARTITIONING: "false"}):
                    assert rows.rdd.getNumPartitions() == tasks
                    assert "Exchange" not in rows._jdf.queryExecution().executedPlan().toString()
                    checksums.append(checksums_by_hour(rows, rows.columns))
            assert checksums[0] == checksums[1] and sorted(checksums[0]) == hours
    assert not any(map(table_cache.contains, staged.ids.values()))  # removed after the block
    plan.hours[0].outputs, plan.hours[1].outputs = 3, 2
    with caplog.at_level(logging.INFO, logger="kafkalake.compaction.merge"):
        rewrite = merge_hours(lake_spark, catalog_config(settings), stream, ref, plan, progress=lambda _: None)
    assert "not staged" not in caplog.text  # the merge read the staged hours
    assert files_per_hour(settings, "fr") == {hours[0].key: 3, hours[1].key: 2}
    assert rewrite.published_snapshot == snapshot_of(settings, "fr")
    assert len(open_catalog(settings).load_table("lake.fr").snapshots()) == commits + 1
    assert spark_state(lake_spark, settings, "fr") == before
    assert branches(settings, "fr") == []


def test_a_failed_verification_publishes_nothing(platform_settings: Settings, tmp_path: Path, lake_spark) -> None:
    settings = table_settings(platform_settings, tmp_path)
    attach_catalog(lake_spark, settings)
    hours = hours_before(count=2)
    generate_table(lake_spark, settings, "fr", hours, files_per_hour=3, rows_per_hour=200)
    config = catalog_config(settings)
    source = lake_spark.table(config.identifier("fr")).where(hours_filter(hours))
    expected = checksums_by_hour(source, source.columns)
    snapshot, files = snapshot_of(settings, "fr"), files_per_hour(settings, "fr")

    # the write lost a row: the branch's rows differ from the source's
    with pytest.raises(VerifyError, match=r"verification failed for 1 hour\(s\).*nothing was published") as err:
        replace_hours(lake_spark, config, "fr", source.where("NOT (`partition` = 0 AND `offset` = 0)"), expected,
                      origin="compaction", progress=lambda _: None)
    assert "\n" not in str(err.value)
    # the source's figures were wrong (another content of the same row count)
    wrong = {h: (rows, "0-0") for h, (rows, _sum) in expected.items()}
    with pytest.raises(VerifyError, match="for 2 hour"):
        replace_hours(lake_spark, config, "fr", source.coalesce(1), wrong, origin="compaction", progress=lambda _: None)
    assert snapshot_of(settings, "fr") == snapshot and files_per_hour(settings, "fr") == files
    assert branches(settings, "fr") == []


def test_verification_reads_a_parquet_hours_files_as_the_table_reads_them(
    platform_settings: Settings, tmp_path: Path, lake_spark
) -> None:
    settings = table_settings(platform_settings, tmp_path, sink_format="both")
    attach_catalog(lake_spark, settings)
    hours = hours_before(count=2)
    generate_table(lake_spark, settings, "fr", hours, files_per_hour=3, rows_per_hour=400, garbage=True)
    config = catalog_config(settings)
    for table in ("fr", "fr_quarantine"):
        ident = config.identifier(table)
        snapshot = snapshot_of(settings, table)
        files = plain_parquet_files(lake_spark, ident, snapshot, hours)
        assert files is not None and len(files) >= 2, table
        table_read = lake_spark.table(ident).where(hours_filter(hours))
        expected = checksums_by_hour(table_read, table_read.columns)
        # the files' own read (nested headers and all) gives the table's checksums
        assert checksums_by_hour(lake_spark.read.parquet(*files).select(*table_read.columns),
                                 table_read.columns) == expected
        assert verify_hours(lake_spark, ident, snapshot, expected, table_read.columns) == {}
        wrong = {**expected, hours[0]: (expected[hours[0]][0], "0-0")}
        assert verify_hours(lake_spark, ident, snapshot, wrong, table_read.columns) == {
            hours[0]: (expected[hours[0]], wrong[hours[0]])}
    # Avro files are read through the table
    avro = config.identifier("fr_avro")
    assert plain_parquet_files(lake_spark, avro, snapshot_of(settings, "fr_avro"), hours) is None


def test_a_rewrite_publishes_after_the_streams_housekeeping_ran_past_its_fork_point(
    platform_settings: Settings, tmp_path: Path, lake_spark
) -> None:
    """A stream commits every trigger and keeps only its newest snapshots: while a rewrite is in
    flight its housekeeping keeps every snapshot since the fork point, which the cherry-pick
    walks to find files added to the rewritten hours; once the rewrite is done they expire."""
    from kafkalake.catalog.iceberg import Housekeeping, housekeep, load_table
    from kafkalake.lake.rewrite import rewrite_branch

    settings = table_settings(platform_settings, tmp_path)
    attach_catalog(lake_spark, settings)
    closed, live = hours_before(count=2, gap=3), hours_before(count=1, gap=0)
    generate_table(lake_spark, settings, "fr", closed, files_per_hour=3, rows_per_hour=300)
    config = catalog_config(settings)
    keep_one = Housekeeping(every_commits=1, retain_last=1)
    with rewrite_branch(lake_spark, config, "fr", "compaction") as branch:
        for i in range(6):  # the stream appends to the live hour and housekeeps after each commit
            generate_table(lake_spark, settings, "fr", live, files_per_hour=1, rows_per_hour=10, seed=20 + i,
                           first_offset=10_000 + 10 * i)
            done = housekeep(lake_spark, load_table(lake_spark, config, "fr"), "stream", keep_one)
            assert done["expired"] == 0, done
        rows = lake_spark.read.option("versionAsOf", str(branch.base)).table(config.identifier("fr")).where(
            hours_filter(closed)).repartition(1)
        rewrite = replace_hours(lake_spark, config, "fr", rows, closed, origin="compaction", branch=branch,
                                progress=lambda _: None)
        assert kafkalake_refs(settings, "fr") == [branch.name]  # the caller's branch: dropped by its block
    assert rewrite.published_snapshot is not None and rewrite.rows == 600
    files = files_per_hour(settings, "fr")
    assert [files[h.key] for h in closed] == [1, 1] and files[live[0].key] == 6
    # nothing in flight: the same policy now expires all but the newest snapshot
    done = housekeep(lake_spark, load_table(lake_spark, config, "fr"), "stream", keep_one)
    assert done["expired"] >= 7, done
    assert kafkalake_refs(settings, "fr") == []


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
    assert table_checksum(df.where("false")) == (0, "0-0")


def test_kill_9_at_every_phase_leaves_the_old_or_the_new_snapshot_and_the_next_run_finishes(
    platform_settings: Settings, tmp_path: Path, lake_spark
) -> None:
    settings = table_settings(platform_settings, tmp_path, orphan_grace_minutes=0)
    attach_catalog(lake_spark, settings)
    hours = hours_before(count=2)
    generate_table(lake_spark, settings, "fr", hours, files_per_hour=4, rows_per_hour=300)
    original, old_files = arrow_state(settings), files_per_hour(settings, "fr")
    assert set(old_files.values()) == {4}

    def compact(fault: str | None) -> subprocess.CompletedProcess[str]:
        extra = {"KAFKALAKE_FAULT": f"compaction.{fault}"} if fault else {}
        return run_cli(settings, "compact", "fr", "--closed-before", FUTURE, env=cli_env(settings, **extra),
                       timeout=300)

    left: list[str] = []
    for phase in ("branch", "write", "verify"):
        result = compact(phase)
        assert result.returncode != 0, f"{phase}: the run was meant to die"
        assert arrow_state(settings) == original, f"after a kill in {phase}"
        assert files_per_hour(settings, "fr") == old_files, f"{phase}: nothing may be published before publish"
        now = branches(settings, "fr")
        assert len(now) == 1 and now[0] not in left, f"{phase}: the run drops the branch of the one before: {now}"
        left = now

    result = compact("publish")
    assert result.returncode != 0
    assert arrow_state(settings) == original
    assert set(files_per_hour(settings, "fr").values()) == {1}  # published: the new snapshot
    assert len(branches(settings, "fr")) == 1  # killed before dropping its branch

    result = compact(None)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert "recovered: dropped branch kafkalake_compaction_" in result.stdout
    assert "nothing to compact" in result.stdout
    assert kafkalake_refs(settings, "fr") == []  # no branch or other ref left
    assert OrphanSweeps(settings).due_at("fr", 24) > time.time()  # the recovering run swept the table
    assert arrow_state(settings) == original
    assert set(files_per_hour(settings, "fr").values()) == {1}
    history = main_history(settings, "fr")
    assert [s.get("deleted-data-files") for s in history if s.get("replace-partitions") == "true"] == ["8"]


# --------------------------------------------------------------------------- streamed tables

def _airflow(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(Path(sys.executable).parent / "airflow"), *args], env=env, capture_output=True,
                          text=True, timeout=600, check=False)


def test_compaction_dag_compacts_parquet_and_avro_and_an_hour_range_touches_only_its_hours(
    kafka: Settings, airflow_env_ready: dict[str, str], tmp_path: Path, lake_spark
) -> None:
    topic = create_time_topic(kafka)
    settings = table_settings(kafka, tmp_path, "fridge", topic=topic, sink_format="both")
    hours = hours_before(count=2)
    produced = produce_at(kafka, topic, past_stamps(hours, 1000))
    run = run_cli(settings, "stream", "run", "fridge", "--available-now", timeout=600)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    attach_catalog(lake_spark, settings)
    before = {t: spark_state(lake_spark, settings, t) for t in ("fridge", "fridge_avro")}
    arrow_before = arrow_state(settings, "fridge")
    assert before["fridge"][0] == before["fridge_avro"][0] == arrow_before[0] == produced
    small = {t: files_per_hour(settings, t) for t in ("fridge", "fridge_avro")}
    assert all(n > 1 for files in small.values() for n in files.values()), small

    # the DAG, restricted to the first hour (what a backfill run of that hour's date does)
    env = {**airflow_env_ready, **settings.to_env()}
    result = _airflow(env, "dags", "test", "compaction", "-c",
                      json.dumps({"hour_from": hours[0].start.isoformat(), "hour_to": hours[0].start.isoformat()}))
    output = result.stdout + result.stderr
    assert result.returncode == 0 and "state=success" in output, output[-6000:]
    assert "fridge (parquet): 1 hour(s) compacted" in output and "fridge_avro (avro): 1 hour(s) compacted" in output
    reports = list((settings.state_dir / "reports" / "compaction").glob("*.json"))
    assert len(reports) == 1
    assert reports[0].with_suffix(".png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    doc = json.loads(reports[0].read_text())
    assert {(t["table"], t["format"]) for t in doc["tables"]} == {
        ("fridge", "parquet"), ("fridge_avro", "avro"), ("fridge_quarantine", "quarantine")}
    for t in ("fridge", "fridge_avro"):
        assert files_per_hour(settings, t) == {hours[0].key: 1, hours[1].key: small[t][hours[1].key]}

    # the CLI, every closed hour: the second hour now, the first skipped
    result = run_cli(settings, "compact", timeout=600)
    assert result.returncode == 0, failure_lines(result)
    assert "fridge (parquet): 1 hour(s) compacted, 1 skipped" in result.stdout
    for t in ("fridge", "fridge_avro"):
        assert files_per_hour(settings, t) == {hours[0].key: 1, hours[1].key: 1}
        assert spark_state(lake_spark, settings, t) == before[t]  # Spark SQL reads the Avro table
    assert arrow_state(settings, "fridge") == arrow_before  # pyiceberg the Parquet one
    assert len(list((settings.state_dir / "reports" / "compaction").glob("*.png"))) == 2

    # and once more: nothing to do, nothing committed
    snapshots = {t: snapshot_of(settings, t) for t in ("fridge", "fridge_avro")}
    stream, ref = resolve_table(settings, "fridge_avro")
    from kafkalake.stream.watermark import closed_before

    again = compact_table(lake_spark, settings, stream, ref, closed_before=closed_before(settings, stream),
                          progress=lambda _: None)
    assert again["totals"]["hours_compacted"] == 0 and again["totals"]["hours_skipped"] == 2
    assert {t: snapshot_of(settings, t) for t in ("fridge", "fridge_avro")} == snapshots


def test_compaction_beside_a_live_stream_loses_nothing_and_publishes(kafka: Settings, tmp_path: Path,
                                                                     lake_spark) -> None:
    """And any engine reads the table meanwhile: Spark SQL, time travel, pyiceberg into DuckDB,
    a row-level delete of one device (docs/architecture.md: Any engine reads the lake)."""
    topic = create_time_topic(kafka)
    settings = table_settings(kafka, tmp_path, "live", topic=topic, grace_minutes=0)
    closed = hours_before(count=2)
    produced = [produce_at(kafka, topic, past_stamps(closed, 1000))]
    log_path = tmp_path / "stream.log"
    log = log_path.open("w")
    driver = subprocess.Popen([sys.executable, "-m", "kafkalake.cli", "stream", "run", "live"],
                              env=cli_env(settings), stdout=log, stderr=subprocess.STDOUT)
    stop = threading.Event()

    def keep_producing() -> None:
        seed = 10
        while not stop.is_set():
            produced[0] += produce_at(kafka, topic, [datetime.now(UTC)] * 100, seed=seed)
            seed += 1
            time.sleep(0.5)

    def closed_rows() -> bool:
        assert driver.poll() is None, log_path.read_text()[-3000:]
        try:
            files = hour_files(settings, "live")[1]
        except Exception:  # the table is created when the stream starts
            return False
        return sum(f.rows for h in closed for f in files.get(h, [])) == produced[0]

    producer = threading.Thread(target=keep_producing)
    try:
        wait_for("the closed hours in the table", closed_rows, 240, every=2, log=log_path)
        small = files_per_hour(settings, "live")
        assert all(small[h.key] > 1 for h in closed), small
        ident = catalog_config(settings).identifier("live")
        attach_catalog(lake_spark, settings)
        lake_spark.sql(f"ALTER TABLE {ident} CREATE TAG before_compaction")  # a tag outlives expiry
        rows_before = lake_spark.sql(f"SELECT count(*) FROM {ident} VERSION AS OF 'before_compaction'").first()[0]
        assert rows_before == produced[0]
        producer.start()
        result = run_cli(settings, "compact", "live", timeout=400)
        time.sleep(3)  # the stream commits a few more batches after the compaction's commit
        stop.set()
        producer.join(60)
        (tmp_path / "compact.log").write_text(result.stdout + result.stderr)
        assert result.returncode == 0, failure_lines(result)
        assert "live (parquet): 2 hour(s) compacted" in result.stdout
        assert driver.poll() is None, log_path.read_text()[-3000:]  # the stream never failed
        files = files_per_hour(settings, "live")
        assert [files[h.key] for h in closed] == [1, 1]

        def caught_up() -> bool:
            assert driver.poll() is None, log_path.read_text()[-3000:]
            return arrow_state(settings, "live")[0] >= produced[0]

        wait_for("the stream to catch up", caught_up, 180, every=2, log=log_path)
        rows, _digest, unique = arrow_state(settings, "live")
        assert rows == unique == produced[0]  # every Kafka offset exactly once
        _read_like_any_engine(lake_spark, settings, ident, rows_before, driver, log_path)
    finally:
        stop.set()
        run_cli(settings, "stream", "stop", "live")
        try:
            driver.wait(90)
        except subprocess.TimeoutExpired:
            driver.kill()
        log.close()


def _read_like_any_engine(spark: Any, settings: Settings, ident: str, rows_before: int,
                          driver: subprocess.Popen, log_path: Path) -> None:
    """Spark SQL and DuckDB (through pyiceberg) on the table the live stream keeps appending to."""
    import duckdb

    from tests.integration.lake_helpers import arrow_table

    assert spark.sql(f"SELECT count(*) FROM {ident} VERSION AS OF 'before_compaction'").first()[0] == rows_before
    newest = spark.sql(f"SELECT snapshot_id, committed_at, summary['total-records'] AS total FROM {ident}.snapshots "
                       "ORDER BY committed_at DESC LIMIT 1").first()
    assert spark.sql(f"SELECT count(*) FROM {ident} VERSION AS OF {newest['snapshot_id']}").first()[0] == int(
        newest["total"])
    moment = newest["committed_at"].strftime("%Y-%m-%d %H:%M:%S.%f")
    assert spark.sql(f"SELECT count(*) FROM {ident} TIMESTAMP AS OF '{moment}'").first()[0] == int(newest["total"])
    con = duckdb.connect()
    con.register("live", arrow_table(settings, "live"))
    total, unique = con.execute('SELECT count(*), count(DISTINCT (partition, "offset")) FROM live').fetchone()
    assert total == unique >= rows_before
    # "remove device X's data": one DELETE while the stream appends, one commit
    device = spark.sql(f"SELECT key FROM {ident} LIMIT 1").first()["key"]
    others_before = spark.sql(f"SELECT count(*) FROM {ident} WHERE key != X'{bytes(device).hex()}'").first()[0]
    spark.sql(f"DELETE FROM {ident} WHERE key = X'{bytes(device).hex()}'")
    deleted_at = spark.sql(f"SELECT snapshot_id FROM {ident}.snapshots WHERE operation IN ('overwrite', 'delete') "
                           "ORDER BY committed_at DESC LIMIT 1").first()["snapshot_id"]
    at_delete = f"{ident} VERSION AS OF {deleted_at}"
    assert spark.sql(f"SELECT count(*) FROM {at_delete} WHERE key = X'{bytes(device).hex()}'").first()[0] == 0
    assert spark.sql(f"SELECT count(*) FROM {at_delete} WHERE key != X'{bytes(device).hex()}'").first()[0] >= \
        others_before
    assert driver.poll() is None, log_path.read_text()[-3000:]  # the stream kept going through all of it
