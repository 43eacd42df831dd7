"""The schema-migration DAG for real: the notebook's fridge rollout under live traffic.

(a) `airflow dags test schema_migration` with params: dry run, a real registration (idempotent
    on re-run), and params the form or the first task refuses.
(b) the rollout on a running platform (`kafkalake up`: Kafka + airflow standalone with its
    scheduler): v1 fridges send all the time; the DAG registers v2 and rolls `stream_fridge`
    (graceful stop, the @continuous supervisor restarts it with the v2 reader); then new
    fridges send v2. The table has `temperature` (null for v1 rows, values for v2 rows) and
    exactly the produced rows. A refused schema afterwards changes no byte and stops nothing.
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

import pytest

from kafkalake.config import Settings
from kafkalake.schema.registry import Registry
from tests.conftest import make_settings, run_cli
from tests.integration.lake_helpers import wait_for

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
V1 = (REPO / "schemas" / "fridge" / "v1.avsc").read_text()
V2 = (REPO / "schemas" / "fridge" / "v2.avsc").read_text()
#: adds a field without a default: v2 readers could not read v1 data (BACKWARD refuses it)
REFUSED = json.dumps({**json.loads(V2), "fields": [*json.loads(V2)["fields"], {"name": "humidity", "type": "double"}]})


def _v1_registry(path: Path) -> Path:
    Registry(path).register("fridge", V1)
    return path


def _tree_digest(root: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file() and not p.name.startswith(".")):
        digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def _airflow(env: dict[str, str], *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(Path(sys.executable).parent / "airflow"), *args], env=env, capture_output=True,
                          text=True, timeout=timeout, check=False)


def test_dags_test_registers_v2_idempotently_and_refuses_bad_params(
    airflow_env_ready: dict[str, str], tmp_path: Path
) -> None:
    registry_dir = _v1_registry(tmp_path / "schemas")
    (tmp_path / "streams.yaml").write_text(json.dumps({"streams": [
        {"name": "fridge", "topics": ["fridge-events"], "subject": "fridge"}]}))
    env = {**airflow_env_ready, "KAFKALAKE_SCHEMAS_DIR": str(registry_dir),
           "KAFKALAKE_STREAMS_FILE": str(tmp_path / "streams.yaml"),
           "KAFKALAKE_LAKE_ROOT": str(tmp_path / "lake"), "KAFKALAKE_STATE_DIR": str(tmp_path / "state")}

    dry = _airflow(env, "dags", "test", "schema_migration",
                   "-c", json.dumps({"subject": "fridge", "schema": V2, "dry_run": True}))
    out = dry.stdout + dry.stderr
    assert dry.returncode == 0 and "state=success" in out, out[-4000:]
    assert "compatible as v2 under BACKWARD" in out
    assert Registry(registry_dir).versions("fridge") == [1]  # dry run registers nothing

    run = _airflow(env, "dags", "test", "schema_migration", "-c", json.dumps({"subject": "fridge", "schema": V2}))
    out = run.stdout + run.stderr
    assert run.returncode == 0 and "state=success" in out, out[-5000:]
    assert "registered fridge v2 (schema id 2)" in out
    assert "fridge: not running: its next start reads the new version" in out
    # the Spark verify step ran (tests/unit/migration/test_migration.py: idempotence)
    assert '"rows_by_version"' in out
    assert Registry(registry_dir).versions("fridge") == [1, 2]
    assert Registry(registry_dir).latest("fridge").schema_id == 2

    before = _tree_digest(registry_dir)
    for conf, expected in (
        ({"subject": "../etc", "schema": V2},
         ("does not match", "Invalid input for DAG parameters", "ParamValidationError")),
        ({"subject": "fridge", "schema": REFUSED}, ("refused: fridge: INCOMPATIBLE", "humidity")),
        ({"subject": "fridge", "schema": "{\"type\": \"record\", \"name\": \"User\", \"fields\": [}"},
         ("invalid JSON at line 1",)),
    ):
        bad = _airflow({**env, "AIRFLOW__CORE__DEFAULT_TASK_RETRIES": "0"}, "dags", "test", "schema_migration",
                       "-c", json.dumps(conf), timeout=300)
        out = bad.stdout + bad.stderr
        assert bad.returncode != 0, (conf, out[-2000:])
        assert not re.search(r"DagRun Finished: .*state=success", out), conf
        assert any(e in out for e in expected), (conf, out[-3000:])
    assert _tree_digest(registry_dir) == before


# --------------------------------------------------------------------------- the live rollout

class _Producer(threading.Thread):
    """Sends fridge records of one writer version at a steady rate until stopped."""

    def __init__(self, settings: Settings, topic: str, version: int, rate: int, seed: int) -> None:
        super().__init__(daemon=True)
        self.settings, self.topic, self.version, self.rate, self.seed = settings, topic, version, rate, seed
        self.sent = 0
        self.stop = threading.Event()

    def run(self) -> None:
        from kafkalake.produce.fleet import FridgeFleet
        from kafkalake.produce.producer import make_producer
        from kafkalake.wire.encoder import FramedEncoder

        version = Registry(self.settings.schemas_dir).get("fridge", self.version)
        encoder = FramedEncoder.for_version(version)
        fleet = FridgeFleet(v1=encoder, v2=encoder, devices=20, v1_fraction=1.0 if self.version == 1 else 0.0,
                            seed=self.seed)
        producer = make_producer(self.settings.bootstrap_servers)
        records = fleet.messages(10_000_000)
        while not self.stop.is_set():
            started = time.monotonic()
            for _ in range(self.rate // 10):
                key, value, _sid, _kind = next(records)
                producer.produce(self.topic, value=value, key=key)
            self.sent += self.rate // 10
            producer.poll(0)
            time.sleep(max(0.0, 0.1 - (time.monotonic() - started)))
        assert producer.flush(60) == 0


def test_fridge_rollout_under_live_traffic_loses_nothing(tmp_path: Path) -> None:
    from kafkalake.kafka.topics import create_topic
    from kafkalake.lake.landing import read_landing
    from kafkalake.lake.read import read_table_arrow
    from kafkalake.platform.local_airflow import airflow_env, dag_run_state
    from kafkalake.stream.config import get_stream, stream_paths
    from kafkalake.stream.status import read_status

    topic = f"rollout-{uuid.uuid4().hex[:8]}"
    (tmp_path / "streams.yaml").write_text(json.dumps({"streams": [
        {"name": "fridge", "topics": [topic], "subject": "fridge", "trigger": "2 seconds",
         "health": {"max_idle_triggers": 60}}]}))
    settings = make_settings(tmp_path / "state").with_overrides(
        schemas_dir=_v1_registry(tmp_path / "schemas"), streams_file=tmp_path / "streams.yaml")
    status_file = stream_paths(settings, get_stream(settings, "fridge")).status_file
    up = run_cli(settings, "up", timeout=420)
    assert up.returncode == 0, up.stdout[-3000:] + up.stderr[-3000:]
    producers: list[_Producer] = []
    try:
        env = airflow_env(settings)
        create_topic(settings.bootstrap_servers, topic)
        producers.append(_Producer(settings, topic, 1, rate=400, seed=1))
        producers[0].start()
        assert _airflow(env, "dags", "unpause", "stream_fridge").returncode == 0
        wait_for("stream_fridge running with reader v1",
                 lambda: (read_status(status_file) or {}).get("state") == "running", 240)
        first_pid = read_status(status_file)["pid"]

        run_id = f"rollout_{uuid.uuid4().hex[:6]}"
        trigger = _airflow(env, "dags", "trigger", "schema_migration", "--run-id", run_id,
                           "-c", json.dumps({"subject": "fridge", "schema": V2}))
        assert trigger.returncode == 0, trigger.stdout + trigger.stderr
        assert _airflow(env, "dags", "unpause", "schema_migration").returncode == 0

        def migration_state() -> str | None:
            state = dag_run_state(env, "schema_migration", run_id)
            return state if state in ("success", "failed") else None

        assert wait_for("the migration run", migration_state, 420) == "success"
        status = read_status(status_file)
        assert status["decode_plan"]["reader"]["version"] == 2 and status["pid"] != first_pid
        # new fridges on v2, old ones still on v1
        producers.append(_Producer(settings, topic, 2, rate=400, seed=2))
        producers[1].start()
        time.sleep(8)

        for p in producers:
            p.stop.set()
            p.join(60)
        produced = sum(p.sent for p in producers)
        wait_for("every produced record in the table",
              lambda: read_table_arrow("fridge", settings=settings).num_rows >= produced, 180)
        table = read_table_arrow("fridge", settings=settings)
        assert table.num_rows == produced

        # a refused schema: registry and lake stay byte-identical, the stream keeps its driver
        registry_digest, lake_digest = _tree_digest(settings.schemas_dir), _tree_digest(settings.lake_root)
        pid = read_status(status_file)["pid"]
        run_id = f"refused_{uuid.uuid4().hex[:6]}"
        assert _airflow(env, "dags", "trigger", "schema_migration", "--run-id", run_id,
                        "-c", json.dumps({"subject": "fridge", "schema": REFUSED})).returncode == 0
        assert wait_for("the refused run", migration_state, 300) == "failed"
        assert _tree_digest(settings.schemas_dir) == registry_digest
        assert _tree_digest(settings.lake_root) == lake_digest
        assert read_status(status_file)["pid"] == pid and read_status(status_file)["state"] == "running"

        assert "temperature" in table.column_names
        rows = table.select(["schema_version", "temperature"]).to_pylist()
        v1 = [r for r in rows if r["schema_version"] == 1]
        v2 = [r for r in rows if r["schema_version"] == 2]
        assert len(v1) == producers[0].sent and len(v2) == producers[1].sent
        assert all(r["temperature"] is None for r in v1)
        assert all(r["temperature"] is not None for r in v2)
        sink = stream_paths(settings, get_stream(settings, "fridge")).landing["parquet"]
        assert read_landing(sink, zone="quarantine").num_rows == 0

        # pausing the supervisor DAG (the real scheduler's view) stops the stream
        from kafkalake.stream.driver import pid_alive

        assert _airflow(env, "dags", "pause", "stream_fridge").returncode == 0
        wait_for("the stream to stop after the DAG was paused",
              lambda: (read_status(status_file) or {}).get("state") == "stopped" and not pid_alive(pid), 180)
    finally:
        for p in producers:
            p.stop.set()
        down = run_cli(settings, "down", timeout=240)
        assert down.returncode == 0, down.stderr
