"""Schema migration for real: a new fridge version evolves the Iceberg tables in the same rollout.

docs/architecture.md: Schema changes are checked before they exist; Exactly once into the lake;
Any engine reads the lake.

(a) the rollout under live traffic, on real Kafka and a real stream driver (spark-submit): old
    fridges send v1 all along; check, register, evolve (the table gains ``door`` with default
    "closed" and ``sendtime`` widens int -> long while the v1 driver keeps writing), roll the
    stream (stop at a batch boundary, restart with the new reader); then new fridges send v2.
    Every Kafka offset is once in the table or the quarantine table; rows written before the
    column existed read its default through pyiceberg and Spark SQL; no data file was rewritten.
(b) ``airflow dags test schema_migration``: registers and evolves, again as a no-op (the Spark
    step skipped), refuses bad params and a change Iceberg cannot express with one line,
    leaving the registry and the table schema unchanged; a stream driver's start evolves its
    tables to a version registered without the DAG.
"""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from kafkalake.config import Settings
from kafkalake.schema.registry import Registry
from tests.conftest import cli_env
from tests.integration.lake_helpers import arrow_table, attach_catalog, table_settings, wait_for

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
V1 = json.loads((REPO / "schemas" / "fridge" / "v1.avsc").read_text())
#: the new version: a field with a default, and ``sendtime`` promoted int -> long
NEW = {**V1, "doc": "A fridge event; this version adds the door state and widens sendtime.", "fields": [
    V1["fields"][0], V1["fields"][1], {"name": "sendtime", "type": ["long", "null"]},
    {"name": "door", "type": "string", "default": "closed", "doc": "door state (v1 fridges: closed)"}]}
#: BACKWARD lets a long become a double; an Iceberg column cannot
INEXPRESSIBLE = {**NEW, "fields": [*NEW["fields"][:2], {"name": "sendtime", "type": ["double", "null"]},
                                   NEW["fields"][3]]}
REFUSAL = ("field sendtime: long -> double cannot be expressed in the Iceberg table fr "
           "(allowed: int->long, float->double, decimal widening, new optional fields)")


def _settings(base: Settings, tmp_path: Path, topic: str = "unused") -> Settings:
    settings = table_settings(base, tmp_path, "fr", topic=topic, stream={"max_offsets_per_trigger": None})
    registry = tmp_path / "schemas"
    Registry(registry).register("fridge", json.dumps(V1))
    return settings.with_overrides(schemas_dir=registry)


def _schema(settings: Settings) -> dict[str, Any]:
    """The table's schema as pyiceberg sees it: ``{column: (type, initial default)}``."""
    from kafkalake.catalog.config import open_catalog

    table = open_catalog(settings).load_table("lake.fr")
    return {f.name: (str(f.field_type), f.initial_default) for f in table.schema().fields}


class _Fridges(threading.Thread):
    """Fridges of one schema version sending at a steady rate until stopped."""

    def __init__(self, settings: Settings, topic: str, version: int, rate: int = 150) -> None:
        super().__init__(daemon=True)
        self.settings, self.topic, self.version, self.rate = settings, topic, version, rate
        self.sent = 0
        self.stop = threading.Event()
        self.failed: list[str] = []

    def record(self, i: int) -> dict[str, Any]:
        base = {"name": f"fridge-{self.version}-{i % 20:02d}", "action": "open"}
        if self.version == 1:
            return {**base, "sendtime": i}
        return {**base, "sendtime": 2**40 + i, "door": ("open", "ajar")[i % 2]}

    def run(self) -> None:
        from kafkalake.produce.producer import make_producer
        from kafkalake.wire.encoder import FramedEncoder

        encoder = FramedEncoder.for_version(Registry(self.settings.schemas_dir).get("fridge", self.version))
        producer = make_producer(self.settings.bootstrap_servers)

        def report(err: Any, _msg: Any) -> None:
            if err is not None:
                self.failed.append(str(err))

        while not self.stop.is_set():
            for _ in range(self.rate // 10):
                value = encoder.encode(self.record(self.sent))
                producer.produce(self.topic, value=value, key=b"%d" % self.sent, on_delivery=report)
                self.sent += 1
            producer.poll(0)
            time.sleep(0.1)
        assert producer.flush(60) == 0


def _driver(settings: Settings, log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "kafkalake.cli", "stream", "run", "fr"], env=cli_env(settings),
                            stdout=log.open("w"), stderr=subprocess.STDOUT, start_new_session=True)


def _batch(status_file: Path) -> int:
    from kafkalake.stream.status import read_status

    return int(((read_status(status_file) or {}).get("queries", {}).get("fr") or {}).get("batch_id", -1))


def test_fridge_rollout_under_live_traffic_evolves_the_table_and_loses_nothing(
    kafka: Settings, tmp_path: Path, lake_spark: Any
) -> None:
    from kafkalake.kafka.topics import create_topic
    from kafkalake.migration.evolve import evolve_tables
    from kafkalake.migration.rollout import check, parse_request, register, roll_streams
    from kafkalake.stream.config import get_stream, stream_paths
    from kafkalake.stream.driver import request_stop
    from kafkalake.stream.status import read_status

    topic = f"rollout-{uuid.uuid4().hex[:8]}"
    settings = _settings(kafka, tmp_path, topic)
    stream = get_stream(settings, "fr")
    status_file = stream_paths(settings, stream).status_file
    create_topic(kafka.bootstrap_servers, topic, partitions=2)
    old = _Fridges(settings, topic, 1)
    new = _Fridges(settings, topic, 2)
    old.start()
    drivers = [_driver(settings, tmp_path / "driver-v1.log")]
    try:
        wait_for("the v1 driver's first batches", lambda: _batch(status_file) >= 1 or drivers[0].poll() is not None,
                 240, every=0.5)
        assert drivers[0].poll() is None, (tmp_path / "driver-v1.log").read_text()[-3000:]

        # check -> register -> evolve, while the v1 driver writes on
        request = parse_request({"subject": "fridge", "schema": json.dumps(NEW)})
        assert check(settings, request)["tables"] == 'fr: add door string default "closed"; sendtime int -> long'
        assert register(settings, request)["version"] == 2
        attach_catalog(lake_spark, settings)
        evolved = evolve_tables(lake_spark, settings, "fridge", say=lambda _line: None)
        assert evolved["fr"]["added"] == ["door"] and evolved["fr"]["promoted"] == {"sendtime": "int -> long"}
        assert evolved["fr"]["columns"][:4] == ["name", "action", "sendtime", "door"]  # beside the reader fields
        assert _schema(settings)["sendtime"] == ("long", None)
        assert _schema(settings)["door"] == ("string", "closed")
        after_evolve = _batch(status_file)
        wait_for("v1 batches into the evolved table", lambda: _batch(status_file) >= after_evolve + 2, 120, every=0.5)
        assert drivers[0].poll() is None

        # roll: the stream stops at a batch boundary; the test plays its supervisor
        outcome: dict[str, str] = {}
        roller = threading.Thread(target=lambda: outcome.update(
            roll_streams(settings, "fridge", 2, stop_timeout=120, restart_timeout=240, say=lambda _line: None)))
        roller.start()
        assert drivers[0].wait(120) == 0, (tmp_path / "driver-v1.log").read_text()[-3000:]
        drivers.append(_driver(settings, tmp_path / "driver-v2.log"))
        roller.join(300)
        assert outcome["fr"].startswith("restarted with reader v2"), outcome
        assert read_status(status_file)["decode_plan"]["reader"]["version"] == 2

        new.start()  # new fridges on v2, the old ones still on v1
        wait_for("the new fridges' first records", lambda: new.sent >= 300, 60, every=0.5)
        for fridges in (old, new):
            fridges.stop.set()
            fridges.join(60)
        assert old.failed == new.failed == []
        produced = old.sent + new.sent

        def landed() -> int:
            return arrow_table(settings, "fr").num_rows + arrow_table(settings, "fr_quarantine").num_rows

        wait_for("every produced record in the tables", lambda: landed() >= produced, 300, every=0.5)
        request_stop(settings, stream)
        assert drivers[1].wait(90) == 0, (tmp_path / "driver-v2.log").read_text()[-3000:]
    finally:
        old.stop.set()
        new.stop.set()
        for driver in drivers:
            if driver.poll() is None:
                driver.kill()
                driver.wait(30)

    table = arrow_table(settings, "fr")
    assert arrow_table(settings, "fr_quarantine").num_rows == 0
    assert table.num_rows == produced
    offsets = set(zip(table["partition"].to_pylist(), table["offset"].to_pylist(), strict=True))
    assert len(offsets) == produced == _end_offsets(settings, topic)  # every Kafka offset, once
    rows = table.select(["schema_version", "door", "sendtime"]).to_pylist()
    v1 = [r for r in rows if r["schema_version"] == 1]
    v2 = [r for r in rows if r["schema_version"] == 2]
    assert len(v1) == old.sent and len(v2) == new.sent
    assert {r["door"] for r in v1} == {"closed"}  # files from before the column read its default
    assert {r["door"] for r in v2} == {"open", "ajar"} and min(r["sendtime"] for r in v2) >= 2**40
    # no data file was rewritten: the first snapshot's files were written with the v1 table schema
    from kafkalake.catalog.config import open_catalog

    iceberg = open_catalog(settings).load_table("lake.fr")
    assert iceberg.snapshots()[0].schema_id != iceberg.schema().schema_id
    assert iceberg.schema().find_field("door").doc == "door state (v1 fridges: closed)"
    # Spark SQL reads the same (a full scan: Iceberg 1.11's Parquet row-group filter drops the
    # files written before ``door`` existed from ``WHERE door = ...``, apache/iceberg#16690)
    name = attach_catalog(lake_spark, settings)
    spark_rows = lake_spark.table(f"{name}.lake.fr")
    by_door = {(r["schema_version"], r["door"]): r["n"] for r in
               spark_rows.groupBy("schema_version", "door").count().withColumnRenamed("count", "n").collect()}
    assert by_door[(1, "closed")] == old.sent and {d for v, d in by_door if v == 1} == {"closed"}
    assert dict(spark_rows.dtypes)["sendtime"] == "bigint"


def _end_offsets(settings: Settings, topic: str) -> int:
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer({"bootstrap.servers": settings.bootstrap_servers, "group.id": f"t-{uuid.uuid4()}"})
    try:
        return sum(consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in (0, 1))
    finally:
        consumer.close()


# --------------------------------------------------------------------------- the DAG

def _digest(root: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file() and not p.name.startswith(".")):
        digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def _dags_test(env: dict[str, str], conf: dict[str, Any]) -> tuple[int, str]:
    run = subprocess.run([str(Path(sys.executable).parent / "airflow"), "dags", "test", "schema_migration",
                          "-c", json.dumps(conf)], env=env, capture_output=True, text=True, timeout=400, check=False)
    return run.returncode, run.stdout + run.stderr


def test_dags_test_evolves_once_refuses_what_iceberg_cannot_express_and_drivers_evolve_at_start(
    airflow_env_ready: dict[str, str], platform_settings: Settings, tmp_path: Path, lake_spark: Any
) -> None:
    from kafkalake.migration.evolve import evolve_tables

    settings = _settings(platform_settings, tmp_path)
    attach_catalog(lake_spark, settings)
    assert evolve_tables(lake_spark, settings, "fridge", say=lambda _line: None) == {
        "fr": {"created": True}, "fr_quarantine": {"created": True}}  # the v1 tables, as a stream creates them
    keys = ("KAFKALAKE_SCHEMAS_DIR", "KAFKALAKE_STREAMS_FILE", "KAFKALAKE_LAKE_ROOT", "KAFKALAKE_STATE_DIR",
            "KAFKALAKE_CATALOG", "KAFKALAKE_CATALOG_URI", "KAFKALAKE_WAREHOUSE")
    env = {**airflow_env_ready, **{k: v for k, v in settings.to_env().items() if k in keys},
           "AIRFLOW__CORE__DEFAULT_TASK_RETRIES": "0"}

    code, out = _dags_test(env, {"subject": "fridge", "schema": json.dumps(NEW)})
    assert code == 0 and "state=success" in out, out[-5000:]
    assert "registered fridge v2 (schema id 2)" in out and "tables to create or evolve to v2: fr" in out
    assert 'fr: add door string default "closed"; sendtime int -> long' in out, out[-5000:]  # the evolve step
    assert "fr: not running: its next start reads the new version" in out
    evolved = _schema(settings)
    assert evolved["door"] == ("string", "closed") and evolved["sendtime"] == ("long", None)

    code, out = _dags_test(env, {"subject": "fridge", "schema": json.dumps(NEW)})  # again: nothing to do
    assert code == 0 and "state=success" in out, out[-5000:]
    assert "tables to create or evolve to v2: none" in out and "registered fridge v2 (schema id 2)" in out
    assert Registry(settings.schemas_dir).versions("fridge") == [1, 2]

    registry = _digest(settings.schemas_dir)
    for conf, expected in (({"subject": "../etc", "schema": json.dumps(NEW)}, "does not match"),
                           ({"subject": "fridge", "schema": json.dumps(INEXPRESSIBLE)}, REFUSAL)):
        code, out = _dags_test(env, conf)
        assert code != 0 and not re.search(r"DagRun Finished: .*state=success", out), (conf, out[-3000:])
        assert expected in out, (conf, out[-3000:])
    assert _digest(settings.schemas_dir) == registry
    assert _schema(settings) == evolved

    # a version registered without the DAG: the stream driver's start evolves its tables
    from kafkalake.catalog.config import catalog_config
    from kafkalake.migration.evolve import KAFKA_ROW_DDL
    from kafkalake.stream.config import get_stream, stream_paths
    from kafkalake.stream.decode import decode, decode_plan
    from kafkalake.stream.sink import IcebergBatchSink

    eco = {**NEW, "fields": [*NEW["fields"], {"name": "eco", "type": ["boolean", "null"], "default": False}]}
    Registry(settings.schemas_dir).register("fridge", json.dumps(eco))
    plan = decode_plan(Registry(settings.schemas_dir), "fridge")
    stream = get_stream(settings, "fr")
    checkpoint = stream_paths(settings, stream).checkpoint
    sink = IcebergBatchSink(lake_spark, catalog_config(settings), stream, plan, checkpoint)
    decoded = decode(lake_spark.createDataFrame([], KAFKA_ROW_DDL), plan)
    assert sink.ensure_tables(decoded) == []  # nothing created ...
    assert _schema(settings)["eco"] == ("boolean", False)  # ... the table evolved
    assert sink.ensure_tables(decoded) == [] and _schema(settings) == {**evolved, "eco": ("boolean", False)}
