"""The streaming ingest job end to end: real Kafka, real spark-submit, Iceberg tables read back three ways."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from kafkalake.config import Settings
from kafkalake.kafka.topics import create_topic
from kafkalake.schema.registry import Registry
from kafkalake.stream.config import get_stream, stream_paths
from kafkalake.stream.status import read_status
from kafkalake.wire.decoder import Decoder
from kafkalake.wire.framing import DecodeError
from tests.conftest import cli_env, consume_all, run_cli
from tests.integration.lake_helpers import arrow_table, attach_catalog, table_settings

pytestmark = pytest.mark.integration


def _stream_settings(kafka: Settings, tmp_path: Path, name: str, topic: str, **options: object) -> Settings:
    return table_settings(kafka, tmp_path, name, topic=topic, stream={"max_offsets_per_trigger": None, **options})


def _env(settings: Settings) -> dict[str, str]:
    return cli_env(settings)


def _kafka_messages(settings: Settings, topic: str, expected: int) -> dict[tuple[int, int], bytes]:
    return {(p, o): value for _key, value, p, o in consume_all(settings, topic, expected, idle_polls=15)}


def test_mixed_stream_lands_every_record_once_and_quarantines_every_bad_one(
    kafka: Settings, tmp_path: Path, lake_spark
) -> None:
    topic = f"mixed-{uuid.uuid4().hex[:8]}"
    settings = _stream_settings(kafka, tmp_path, "mixed", topic)
    create_topic(kafka.bootstrap_servers, topic, partitions=2)
    # 20,000 records (30 % of the devices on v1) + one malformed payload every 40 records = 500
    produced = run_cli(settings, "produce", "--topic", topic, "--count", "20000", "--v1-fraction", "0.3",
                       "--inject-garbage", str(1 / 41), "--workers", "1", timeout=300)
    assert produced.returncode == 0, produced.stderr
    assert "(500 malformed on purpose)" in produced.stdout

    run = run_cli(settings, "stream", "run", "mixed", "--available-now", timeout=600)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]

    # Spark SQL on the catalog
    catalog = attach_catalog(lake_spark, settings)
    rows = lake_spark.table(f"{catalog}.lake.mixed")
    assert rows.count() == 20_000
    assert rows.select("topic", "partition", "offset").distinct().count() == 20_000
    by_version = {r["schema_version"]: r["n"]
                  for r in rows.groupBy("schema_version").count().withColumnRenamed("count", "n").collect()}
    assert by_version == {1: 6_000, 2: 14_000}
    assert rows.where("schema_version = 1 and temperature is not null").count() == 0  # v1 rows carry the default
    assert rows.where("schema_version = 2 and temperature is null").count() == 0
    assert rows.where("name is null or key is null").count() == 0
    assert rows.where("cast(key as string) != name").count() == 0  # the fleet keys each record by its device
    assert {f.name for f in rows.schema.fields} >= {"headers", "schema_id", "topic", "partition", "offset"}
    quarantine = lake_spark.table(f"{catalog}.lake.mixed_quarantine")
    assert quarantine.count() == 500

    # The JVM's reason for every quarantined record equals the Python decoder's (one definition)
    decoder = Decoder(Registry(settings.schemas_dir), "fridge")
    expected: dict[tuple[int, int], str] = {}
    for key, value in _kafka_messages(settings, topic, 20_500).items():
        try:
            decoder.decode(value)
        except DecodeError as exc:
            expected[key] = exc.reason.value
    got = {(r["partition"], r["offset"]): r["reason"]
           for r in quarantine.select("partition", "offset", "reason").collect()}
    assert got == expected
    assert set(got.values()) == {"EMPTY", "SHORT_HEADER", "BAD_MAGIC", "UNKNOWN_SCHEMA_ID", "TRUNCATED", "CORRUPT",
                                 "TRAILING_BYTES"}
    raw = {(r["partition"], r["offset"]): bytes(r["value"] or b"")
           for r in quarantine.select("partition", "offset", "value").collect()}
    kafka_values = _kafka_messages(settings, topic, 20_500)
    assert all(raw[k] == kafka_values[k] for k in raw)  # raw bytes kept as they arrived

    # pyiceberg (no JVM) into DuckDB agrees
    import duckdb

    con = duckdb.connect()
    con.register("fridge", arrow_table(settings, "mixed"))
    con.register("quarantined", arrow_table(settings, "mixed_quarantine"))
    assert con.execute('select count(*), count(distinct (partition, "offset")) from fridge').fetchone() == (20_000,
                                                                                                       20_000)
    assert con.execute("select count(*) from quarantined").fetchone() == (500,)

    status = read_status(stream_paths(settings, get_stream(settings, "mixed")).status_file)
    assert status["state"] == "stopped" and status["lag"] == 0
    # where the last batch's time went, as Spark split it: the tasks and the sink (addBatch) within the trigger
    phases = status["queries"]["mixed"]["durations_ms"]
    assert 0 < phases["addBatch"] <= phases["triggerExecution"] and "queryPlanning" in phases


def test_sigkill_three_times_still_lands_every_record_exactly_once(kafka: Settings, tmp_path: Path) -> None:
    """Table and quarantine table together: every offset in exactly one of them, once."""
    topic = f"crash-{uuid.uuid4().hex[:8]}"
    settings = _stream_settings(kafka, tmp_path, "crash", topic, max_offsets_per_trigger=4000)
    create_topic(kafka.bootstrap_servers, topic, partitions=2)
    stream = get_stream(settings, "crash")
    paths = stream_paths(settings, stream)
    total = 0

    def produce(count: int) -> None:
        nonlocal total
        result = run_cli(settings, "produce", "--topic", topic, "--count", str(count), "--workers", "1",
                         "--seed", str(total), "--inject-garbage", "0.01", timeout=300)
        assert result.returncode == 0, result.stderr
        total += count

    produce(40_000)
    for crash in range(3):
        log = open(tmp_path / f"driver-{crash}.log", "w")
        driver = subprocess.Popen([sys.executable, "-m", "kafkalake.cli", "stream", "run", "crash"],
                                  env=_env(settings), stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        before = (read_status(paths.status_file) or {}).get("queries", {}).get("crash", {}).get("batch_id", -1)
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:  # let it commit two batches past where it started
            doc = read_status(paths.status_file) or {}
            if doc.get("queries", {}).get("crash", {}).get("batch_id", -1) >= before + 2:
                break
            assert driver.poll() is None, (tmp_path / f"driver-{crash}.log").read_text()[-3000:]
            time.sleep(0.2)
        else:
            pytest.fail(f"no progress before crash {crash}")
        produce(10_000)  # more data arrives while the driver is busy
        time.sleep(0.7)  # likely mid-batch now
        os.killpg(driver.pid, signal.SIGKILL)
        driver.wait(timeout=30)
        log.close()

    finish = run_cli(settings, "stream", "run", "crash", "--available-now", timeout=600)
    assert finish.returncode == 0, finish.stdout[-3000:] + finish.stderr[-3000:]
    good, bad = arrow_table(settings, "crash"), arrow_table(settings, "crash_quarantine")
    coordinates = [(p, o) for t in (good, bad)
                   for p, o in zip(t["partition"].to_pylist(), t["offset"].to_pylist(), strict=True)]
    from kafkalake.kafka.topics import latest_offsets

    assert total == 70_000 and good.num_rows == total and bad.num_rows > 0
    assert len(coordinates) == len(set(coordinates)) == sum(latest_offsets(kafka.bootstrap_servers, [topic]).values())


def test_a_second_driver_on_the_same_checkpoint_is_refused(kafka: Settings, tmp_path: Path) -> None:
    topic = f"busy-{uuid.uuid4().hex[:8]}"
    settings = _stream_settings(kafka, tmp_path, "busy", topic)
    create_topic(kafka.bootstrap_servers, topic)
    paths = stream_paths(settings, get_stream(settings, "busy"))
    first = subprocess.Popen([sys.executable, "-m", "kafkalake.cli", "stream", "run", "busy"], env=_env(settings),
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 180
        while (read_status(paths.status_file) or {}).get("state") != "running":
            assert time.monotonic() < deadline and first.poll() is None
            time.sleep(0.3)
        second = run_cli(settings, "stream", "run", "busy", timeout=180)
        assert second.returncode == 5
        assert "stream 'busy' is already running" in second.stdout + second.stderr
        assert first.poll() is None  # the first driver is untouched
        # the empty topic keeps it idle: reported under the query's name, though Spark's idle
        # event carries only the query's id
        while "idle_since" not in (read_status(paths.status_file) or {}).get("queries", {}).get("busy", {}):
            assert time.monotonic() < deadline and first.poll() is None
            time.sleep(0.3)
        assert list(read_status(paths.status_file)["queries"]) == ["busy"]
        # graceful stop at a batch boundary
        assert run_cli(settings, "stream", "stop", "busy").returncode == 0
        assert first.wait(timeout=120) == 0
        assert read_status(paths.status_file)["state"] == "stopped"
        assert not paths.stop_file.exists()
    finally:
        if first.poll() is None:
            os.killpg(first.pid, signal.SIGKILL)


def test_avro_sink_is_a_table_of_avro_data_files(kafka: Settings, tmp_path: Path, lake_spark) -> None:
    topic = f"avro-{uuid.uuid4().hex[:8]}"
    settings = _stream_settings(kafka, tmp_path, "avrosink", topic, sink_format="both")
    create_topic(kafka.bootstrap_servers, topic)
    assert run_cli(settings, "produce", "--topic", topic, "--count", "3000", "--workers", "1").returncode == 0
    run = run_cli(settings, "stream", "run", "avrosink", "--available-now", timeout=600)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    catalog = attach_catalog(lake_spark, settings)
    formats = {r[0]: r[1] for r in lake_spark.sql(
        f"select file_format, sum(record_count) from {catalog}.lake.avrosink_avro.files group by 1").collect()}
    assert formats == {"AVRO": 3000}
    parquet = lake_spark.sql(f"select file_format, sum(record_count) from {catalog}.lake.avrosink.files group by 1")
    assert {r[0]: r[1] for r in parquet.collect()} == {"PARQUET": 3000}
    rows = lake_spark.table(f"{catalog}.lake.avrosink_avro")
    assert {"name", "action", "sendtime", "temperature"} <= set(rows.columns)
    assert rows.where("temperature is null").count() == 900  # 30 % of devices on v1


def test_data_loss_is_loud_by_default_and_a_recorded_gap_when_accepted(kafka: Settings, tmp_path: Path) -> None:
    from kafkalake.kafka.topics import delete_records_before, latest_offsets

    topic = f"loss-{uuid.uuid4().hex[:8]}"
    settings = _stream_settings(kafka, tmp_path, "loss", topic)
    create_topic(kafka.bootstrap_servers, topic, partitions=1)
    assert run_cli(settings, "produce", "--topic", topic, "--count", "1000", "--workers", "1").returncode == 0
    assert run_cli(settings, "stream", "run", "loss", "--available-now", timeout=600).returncode == 0
    assert run_cli(settings, "produce", "--topic", topic, "--count", "1000", "--workers", "1",
                   "--seed", "9").returncode == 0
    delete_records_before(kafka.bootstrap_servers, {f"{topic}-0": 1500})  # offsets 1000..1499 never read

    loud = run_cli(settings, "stream", "run", "loss", "--available-now", timeout=600)
    assert loud.returncode == 6, loud.stdout[-2000:] + loud.stderr[-2000:]
    assert "fail_on_data_loss: false" in loud.stdout + loud.stderr

    accepting = _stream_settings(kafka, tmp_path, "loss", topic, fail_on_data_loss=False).with_overrides(
        catalog_name=settings.catalog_name)
    ok = run_cli(accepting, "stream", "run", "loss", "--available-now", timeout=600)
    assert ok.returncode == 0, ok.stdout[-3000:] + ok.stderr[-3000:]
    paths = stream_paths(accepting, get_stream(accepting, "loss"))
    gaps = [json.loads(line) for line in paths.gaps_file.read_text().splitlines()]
    assert [g["gaps"] for g in gaps] == [[{"topic_partition": f"{topic}-0", "from_offset": 1000, "to_offset": 1500,
                                           "missing": 500}]]
    assert gaps[0]["detected"] == "start"
    assert arrow_table(accepting, "loss").num_rows == 1500  # 1000 before the gap + 500 after it
    assert latest_offsets(kafka.bootstrap_servers, [topic]) == {f"{topic}-0": 2000}


def test_console_debug_sink_prints_decoded_rows_and_lands_nothing(kafka: Settings, tmp_path: Path) -> None:
    topic = f"debug-{uuid.uuid4().hex[:8]}"
    settings = _stream_settings(kafka, tmp_path, "debug", topic)
    create_topic(kafka.bootstrap_servers, topic)
    assert run_cli(settings, "produce", "--topic", topic, "--count", "20", "--workers", "1").returncode == 0
    run = run_cli(settings, "stream", "run", "debug", "--available-now", "--debug-sink", "console", timeout=600)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert "Batch: 0" in run.stdout and "fridge-00000" in run.stdout
    assert not list(settings.lake_root.rglob("*.parquet"))  # no table was written
