"""The registry API served for real (`kafkalake registry serve`) to confluent-kafka's own client:
records it serializes through the API land decoded in the stream's Iceberg table, and its
deserializer reads the raw topic back through the API."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from kafkalake.config import LOOPBACK, Settings
from kafkalake.kafka.topics import create_topic
from kafkalake.platform import local_registry
from kafkalake.platform.processes import free_ports, port_in_use, proc_tag, tagged_pids
from kafkalake.stream.config import get_stream
from tests.conftest import REPO, cli_env, consume_all, run_cli
from tests.integration.lake_helpers import arrow_table, table_settings, wait_for

pytestmark = pytest.mark.integration

STREAM = "srapi"
V2_RECORDS = 150
V1_RECORDS = 50


@pytest.fixture
def served(kafka: Settings, tmp_path: Path) -> Iterator[tuple[Settings, str]]:
    """A stream of the test's own over a copy of schemas/, and the API over that copy on a free port."""
    topic = f"srapi-{uuid.uuid4().hex[:8]}"
    (port,) = free_ports(1)
    shutil.copytree(REPO / "schemas", tmp_path / "schemas")
    settings = table_settings(kafka, tmp_path, STREAM, topic=topic, stream={"max_offsets_per_trigger": None})
    settings = settings.with_overrides(schemas_dir=tmp_path / "schemas", registry_port=port)
    log_path = tmp_path / "registry.log"
    with open(log_path, "w") as log:
        server = subprocess.Popen([sys.executable, "-m", "kafkalake.cli", "registry", "serve"],
                                  env=cli_env(settings), stdout=log, stderr=subprocess.STDOUT,
                                  start_new_session=True)
    try:
        wait_for("the registry API to answer GET /",
                 lambda: server.poll() is not None or local_registry.answers(settings, timeout=1.0),
                 timeout=60, every=0.2, log=log_path)
        assert server.poll() is None, log_path.read_text()
        yield settings, topic
    finally:
        if server.poll() is None:
            server.send_signal(signal.SIGTERM)
            try:
                server.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(server.pid, signal.SIGKILL)
                server.wait(timeout=10)
        assert not port_in_use(LOOPBACK, port)


def _records() -> tuple[list[dict], list[dict]]:
    """v2 records (with temperature) and v1 records (without); ``sendtime`` identifies each."""
    v2 = [{"name": f"fridge-{i % 7}", "action": "open" if i % 3 else None, "sendtime": i,
           "temperature": round(2.5 + i / 10, 1)} for i in range(V2_RECORDS)]
    v1 = [{"name": f"old-fridge-{i % 5}", "action": "close", "sendtime": 10_000 + i} for i in range(V1_RECORDS)]
    return v2, v1


def test_confluent_client_produces_through_the_api_and_the_stream_lands_it(served: tuple[Settings, str]) -> None:
    from confluent_kafka import Producer
    from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
    from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
    from confluent_kafka.schema_registry.error import SchemaRegistryError
    from confluent_kafka.serialization import MessageField, SerializationContext

    settings, topic = served
    subject = get_stream(settings, STREAM).subject  # "fridge": streams name their subject, not <topic>-value
    create_topic(settings.bootstrap_servers, topic, partitions=2)
    client = SchemaRegistryClient({"url": settings.registry_url})
    latest = client.get_latest_version(subject)
    assert (latest.subject, latest.version, latest.schema_id) == ("fridge", 2, 2)
    assert client.get_compatibility(subject) == "BACKWARD"
    assert client.get_global_mode() == "READONLY"

    def to_subject(_ctx: object, _record_name: object) -> str:
        return subject

    current = AvroSerializer(client, conf={"auto.register.schemas": False, "use.latest.version": True,
                                           "subject.name.strategy": to_subject})
    # an older producer pinned to v1: resolves id 1 by GET /schemas/ids/1, then POST /subjects/fridge (lookup)
    pinned = AvroSerializer(client, conf={"auto.register.schemas": False, "use.schema.id": 1,
                                          "subject.name.strategy": to_subject})
    ctx = SerializationContext(topic, MessageField.VALUE)
    v2_records, v1_records = _records()
    failed: list[object] = []
    producer = Producer({"bootstrap.servers": settings.bootstrap_servers})
    for serializer, records in ((current, v2_records), (pinned, v1_records)):
        for record in records:
            producer.produce(topic, key=record["name"].encode(), value=serializer(record, ctx),
                             on_delivery=lambda err, _msg: failed.append(err) if err else None)
    assert producer.flush(30) == 0 and failed == []

    # the raw topic: Confluent framing with the ids the API handed out, read back by the client
    raw = consume_all(settings, topic, V2_RECORDS + V1_RECORDS)
    assert sorted(value[:5] for _k, value, _p, _o in raw) == sorted(
        [b"\x00\x00\x00\x00\x01"] * V1_RECORDS + [b"\x00\x00\x00\x00\x02"] * V2_RECORDS)
    deserializer = AvroDeserializer(client)
    decoded = sorted((deserializer(value, ctx) for _k, value, _p, _o in raw), key=lambda r: r["sendtime"])
    assert decoded == sorted(v2_records + v1_records, key=lambda r: r["sendtime"])

    # registration stays with git and the migration DAG
    with pytest.raises(SchemaRegistryError) as refused:
        client.register_schema(subject, Schema(latest.schema.schema_str.replace('"temperature"', '"temp"'), "AVRO"))
    assert refused.value.error_code == 42205 and "schema_migration" in refused.value.error_message
    with pytest.raises(SchemaRegistryError) as missing:
        client.get_latest_version("no-such-subject")
    assert (missing.value.http_status_code, missing.value.error_code) == (404, 40401)

    # the stream decodes what the Confluent client wrote (one run, to the end of the topic)
    run = run_cli(settings, "stream", "run", STREAM, "--available-now", timeout=600)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    table = arrow_table(settings, STREAM)
    rows = {r["sendtime"]: r for r in table.select(
        ["name", "action", "sendtime", "temperature", "schema_id", "schema_version", "key"]).to_pylist()}
    assert len(rows) == table.num_rows == V2_RECORDS + V1_RECORDS
    for record in v2_records:
        row = rows[record["sendtime"]]
        assert (row["schema_id"], row["schema_version"]) == (2, 2)
        assert {k: row[k] for k in record} == record and row["key"] == record["name"].encode()
    for record in v1_records:
        row = rows[record["sendtime"]]
        assert (row["schema_id"], row["schema_version"], row["temperature"]) == (1, 1, None)
        assert {k: row[k] for k in record} == record
    assert arrow_table(settings, f"{STREAM}_quarantine").num_rows == 0


def test_up_style_start_status_and_stop_of_the_managed_api(tmp_path: Path) -> None:
    """`kafkalake up` / `status` / `down` use local_registry: a real process, readiness by HTTP."""
    (port,) = free_ports(1)
    settings = Settings.from_env({"KAFKALAKE_HOME": str(REPO), "KAFKALAKE_STATE_DIR": str(tmp_path / "state"),
                                  "KAFKALAKE_REGISTRY_PORT": str(port)})
    try:
        started = local_registry.start(settings)
        assert started.state == "up" and started.pid is not None
        assert local_registry.start(settings).pid == started.pid  # idempotent
        status = run_cli(settings, "status", timeout=120)
        line = next(ln for ln in status.stdout.splitlines() if ln.startswith("registry"))
        assert line.split()[1:] == ["up", settings.registry_url]
    finally:
        stopped = local_registry.stop(settings)
    assert stopped
    assert local_registry.status(settings).state == "down"
    assert tagged_pids(proc_tag(local_registry.SERVICE, settings.state_dir)) == []
    assert not port_in_use(LOOPBACK, port)
    assert local_registry.stop(settings) is False
