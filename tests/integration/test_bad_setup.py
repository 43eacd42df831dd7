"""Bad setup: one actionable line on stderr, a non-zero exit, and no half-started processes."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from kafkalake.platform.processes import port_in_use, proc_tag, tagged_pids
from tests.conftest import cli_env, make_settings, run_cli

pytestmark = pytest.mark.integration


def _assert_clean_failure(result, settings, *, code: int, says: str) -> None:
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == code, result.stdout + result.stderr
    assert len(lines) == 1, f"expected one line, got:\n{result.stderr}"
    assert lines[0].startswith("error: ") and says in lines[0], lines[0]
    assert "Traceback" not in result.stdout + result.stderr
    assert tagged_pids(proc_tag("kafka", settings.state_dir)) == []


def test_no_java(tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "state")
    venv_bin = str(Path(__import__("sys").executable).parent)
    env = cli_env(settings, PATH=venv_bin)
    env.pop("JAVA_HOME", None)
    result = run_cli(settings, "kafka", "start", env=env, timeout=60)
    _assert_clean_failure(result, settings, code=3, says="java not found")
    assert "install Java 17" in result.stderr


def test_port_taken(tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "state")
    host, port = settings.bootstrap_host_port
    with socket.socket() as squatter:
        squatter.bind((host, port))
        squatter.listen()
        result = run_cli(settings, "kafka", "start", timeout=60)
    _assert_clean_failure(result, settings, code=3, says=f"port {host}:{port} is already in use")
    assert "KAFKALAKE_BOOTSTRAP_SERVERS" in result.stderr


def test_kafka_fails_to_start(tmp_path: Path) -> None:
    """A damaged log dir: the broker exits; we report its error line and leave nothing running."""
    settings = make_settings(tmp_path / "state")
    settings.kafka_data_dir.mkdir(parents=True)
    (settings.kafka_data_dir / "meta.properties").write_text("version=1\ncluster.id=\nnode.id=99\n")
    result = run_cli(settings, "kafka", "start", timeout=180)
    _assert_clean_failure(result, settings, code=4, says="kafka exited with code")
    assert str(settings.logs_dir / "kafka.log") in result.stderr
    assert not port_in_use(*settings.bootstrap_host_port)


@pytest.mark.parametrize(("env", "says"), [
    ({"KAFKALAKE_CATALOG_URI": "thrift://metastore:9083"}, "is not a JDBC catalog URI"),
    ({"KAFKALAKE_WAREHOUSE": "lake/warehouse"}, "KAFKALAKE_WAREHOUSE='lake/warehouse' must be an absolute path"),
])
def test_a_wrong_catalog_setting_stops_a_job_before_spark_starts(tmp_path: Path, env: dict[str, str],
                                                                 says: str) -> None:
    settings = make_settings(tmp_path / "state")
    streams = tmp_path / "streams.yaml"
    streams.write_text('{"streams": [{"name": "fridge", "topics": ["fridge"], "subject": "fridge"}]}')
    result = run_cli(settings, "stream", "run", "fridge",
                     env=cli_env(settings, KAFKALAKE_STREAMS_FILE=str(streams), **env), timeout=60)
    _assert_clean_failure(result, settings, code=3, says=says)


def test_reading_a_table_before_any_stream_created_the_catalog_is_one_line(tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "state")
    result = run_cli(settings, "tables", timeout=60)
    _assert_clean_failure(result, settings, code=3, says="no Iceberg catalog at")
    assert "start a stream first" in result.stderr
