"""The local cluster of real processes: 3 KRaft brokers, a Spark standalone master and 2 workers.

(a) `kafkalake status` shows every broker and the workers; a new topic has 3 replicas and
    ``min.insync.replicas=2``; a stream's job runs on the spark:// master, its executors on the
    workers;
(b) a broker killed with SIGKILL while the fleet produces and the stream runs: the producer
    reports every record acknowledged, each lands exactly once, the stream keeps going, and the
    broker, started again, rejoins every partition's in-sync replicas.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from kafkalake.config import Settings
from tests.conftest import cli_env, failure_lines, make_cluster_settings, run_cli
from tests.integration.lake_helpers import arrow_state, table_settings, wait_for

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    from kafkalake.platform import local_kafka as kafka_local
    from kafkalake.platform import local_spark as spark_local

    settings = make_cluster_settings(tmp_path_factory.mktemp("cluster") / "state")
    try:
        assert kafka_local.start(settings).state == "up"
        assert spark_local.start(settings).state == "up"
        yield settings
    finally:
        spark_local.stop(settings)
        kafka_local.stop(settings)
    assert not any(kafka_local.node_status(settings, n).running for n in kafka_local.nodes(settings))
    assert not spark_local.status(settings).running


def topic_replicas(settings: Settings, topic: str) -> dict[int, tuple[int, list[int], list[int]]]:
    """partition -> (leader, replicas, in-sync replicas)."""
    from kafkalake.kafka.topics import admin_client

    admin = admin_client(settings.bootstrap_servers)
    meta = admin.list_topics(topic, timeout=10).topics[topic]
    return {p: (m.leader, sorted(m.replicas), sorted(m.isrs)) for p, m in meta.partitions.items()}


def min_isr(settings: Settings, topic: str) -> str:
    from confluent_kafka.admin import ConfigResource

    from kafkalake.kafka.topics import admin_client

    resource = ConfigResource("topic", topic)
    admin = admin_client(settings.bootstrap_servers)  # keep a reference: the future dies with its client
    configs = admin.describe_configs([resource])[resource].result(timeout=10)
    return configs["min.insync.replicas"].value


def test_status_shows_the_cluster_and_topics_get_three_replicas(cluster: Settings) -> None:
    shown = run_cli(cluster, "status", timeout=60)
    lines = shown.stdout.splitlines()
    for node_id in (1, 2, 3):
        assert any(line.split()[:3] == ["broker", str(node_id), "up"] for line in lines), shown.stdout
    spark = next(line for line in lines if line.startswith("spark "))
    assert " up " in spark and "2 workers alive" in spark and cluster.spark_master in spark, shown.stdout
    created = run_cli(cluster, "topic", "create", "replicated", "--partitions", "2", timeout=60)
    assert created.returncode == 0 and "replication 3" in created.stdout, failure_lines(created)
    replicas = topic_replicas(cluster, "replicated")
    assert [r for _leader, r, _isr in replicas.values()] == [[1, 2, 3], [1, 2, 3]]
    assert min_isr(cluster, "replicated") == "2"


def test_a_broker_killed_mid_stream_loses_no_acknowledged_record(cluster: Settings, tmp_path: Path) -> None:
    from kafkalake.platform import local_kafka as kafka_local
    from kafkalake.platform import local_spark as spark_local

    topic = "fleet"
    assert run_cli(cluster, "topic", "create", topic, "--partitions", "2", timeout=60).returncode == 0
    settings = table_settings(cluster, tmp_path, "fleet", topic=topic, stream={"max_offsets_per_trigger": 20_000})
    log_path = tmp_path / "stream.log"
    with log_path.open("w") as log:
        driver = subprocess.Popen([sys.executable, "-m", "kafkalake.cli", "stream", "run", "fleet"],
                                  env=cli_env(settings), stdout=log, stderr=subprocess.STDOUT)
        try:
            # the stream's application runs on the master, its executors on the workers
            wait_for("the stream's application on the master",
                     lambda: "kafkalake-stream-fleet" in spark_local.status(cluster).apps, 120, every=2,
                     log=log_path)
            total = 30_000
            producer = subprocess.Popen(
                [sys.executable, "-m", "kafkalake.cli", "produce", "-t", topic, "--count", str(total), "--rate", "1500",
                 "--workers", "1"], env=cli_env(settings), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            time.sleep(6)  # mid-production
            victim = topic_replicas(settings, topic)[0][0]  # the leader of partition 0
            pid = kafka_local.node_status(cluster, kafka_local.node(cluster, victim)).pid
            assert pid is not None
            os.killpg(pid, signal.SIGKILL)  # the broker's whole process group, as a host dying would
            produced, _ = producer.communicate(timeout=240)
            assert producer.returncode == 0, produced[-3000:]
            assert f"delivered {total:,}" in produced, produced[-3000:]
            assert driver.poll() is None, log_path.read_text()[-3000:]  # the stream kept going

            def landed() -> bool:
                assert driver.poll() is None, log_path.read_text()[-3000:]
                try:
                    return arrow_state(settings, "fleet")[0] >= total
                except Exception:  # the table appears with the first batch
                    return False

            wait_for("every acknowledged record in the table", landed, 240, every=3, log=log_path)
            rows, _digest, unique = arrow_state(settings, "fleet")
            assert rows == unique == total  # every acknowledged record once, none twice
            # the broker comes back, rejoins and catches up: it is in every partition's ISR again
            assert kafka_local.start_node(cluster, victim).state == "up"
            wait_for(f"broker {victim} back in the in-sync replicas",
                     lambda: all(victim in isr for _l, _r, isr in topic_replicas(settings, topic).values()), 120)
        finally:
            run_cli(settings, "stream", "stop", "fleet", timeout=120)
            try:
                driver.wait(90)
            except subprocess.TimeoutExpired:
                driver.kill()


def test_a_worker_killed_mid_batch_is_retried_on_the_other_and_lands_exactly_once(
    cluster: Settings, tmp_path: Path
) -> None:
    from kafkalake.platform import local_spark as spark_local
    from kafkalake.platform.processes import ManagedProcess

    topic = "backlog"
    assert run_cli(cluster, "topic", "create", topic, "--partitions", "4", timeout=60).returncode == 0
    total = 120_000
    produced = run_cli(cluster, "produce", "-t", topic, "--count", str(total), timeout=240)
    assert produced.returncode == 0 and f"delivered {total:,}" in produced.stdout, failure_lines(produced)
    # one big batch: the whole backlog in the first trigger, so the kill lands inside it
    settings = table_settings(cluster, tmp_path, "backlog", topic=topic, stream={"max_offsets_per_trigger": total})
    log_path = tmp_path / "stream.log"
    worker = ManagedProcess.for_service(cluster, spark_local.WORKERS[0])
    with log_path.open("w") as log:
        driver = subprocess.Popen([sys.executable, "-m", "kafkalake.cli", "stream", "run", "backlog"],
                                  env=cli_env(settings), stdout=log, stderr=subprocess.STDOUT)
        try:
            def executors_busy() -> bool:
                doc = spark_local.master_state(cluster) or {}
                apps = [a for a in doc.get("activeapps", []) if a.get("name") == "kafkalake-stream-backlog"]
                return bool(apps) and "created Iceberg table" in log_path.read_text()

            wait_for("the stream's first batch to start on both workers", executors_busy, 180, every=1, log=log_path)
            time.sleep(3)
            assert worker.pids(), "worker 1 is not running"
            os.killpg(worker.session(), signal.SIGKILL)  # the worker and its executor: a host gone

            def landed() -> bool:
                assert driver.poll() is None, log_path.read_text()[-3000:]
                try:
                    return arrow_state(settings, "backlog")[0] >= total
                except Exception:  # the table appears with the first batch
                    return False

            wait_for("every record in the table after the worker died", landed, 300, every=3, log=log_path)
            rows, _digest, unique = arrow_state(settings, "backlog")
            assert rows == unique == total
            # the master saw the worker go
            assert spark_local.status(cluster).workers_alive == 1
        finally:
            run_cli(settings, "stream", "stop", "backlog", timeout=120)
            try:
                driver.wait(90)
            except subprocess.TimeoutExpired:
                driver.kill()
            # the next test gets both workers again
            if not worker.pids():
                spark_local.start(cluster)


def test_batch_jobs_run_on_the_master_too(cluster: Settings, tmp_path: Path) -> None:
    """A bounded stream run and a compaction are applications of the spark:// master."""
    from kafkalake.platform import local_spark as spark_local

    topic = "batch"
    assert run_cli(cluster, "topic", "create", topic, "--partitions", "2", timeout=60).returncode == 0
    assert run_cli(cluster, "produce", "-t", topic, "--count", "2000", timeout=240).returncode == 0
    settings = table_settings(cluster, tmp_path, "batch", topic=topic)
    landed = run_cli(settings, "stream", "run", "batch", "--available-now", timeout=400)
    assert landed.returncode == 0, failure_lines(landed)
    assert arrow_state(settings, "batch")[0] == 2000
    compacted = run_cli(settings, "compact", "batch", timeout=400)
    assert compacted.returncode == 0, failure_lines(compacted)
    assert "report:" in compacted.stdout, compacted.stdout[-2000:]
    done = [app.get("name") for app in (spark_local.master_state(cluster) or {}).get("completedapps", [])]
    assert "kafkalake-stream-batch" in done and "kafkalake-compact" in done, done
