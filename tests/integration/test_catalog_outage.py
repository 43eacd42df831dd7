"""The Iceberg catalog becomes unavailable while a stream runs (its SQLite database locked by
another process for longer than every retry): the stream fails loudly, with one line that
names the catalog and exits with SERVICE (retried by the stream DAG); started again once the
catalog is back, it resumes from its checkpoint and every Kafka offset is in the table once.
"""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from kafkalake.catalog.config import catalog_config
from kafkalake.config import Settings
from kafkalake.errors import ExitCode
from tests.conftest import cli_env, run_cli
from tests.integration.lake_helpers import arrow_state, table_settings, wait_for

pytestmark = pytest.mark.integration


def start_driver(settings: Settings, log_path: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "kafkalake.cli", "stream", "run", "outage"],
                            env=cli_env(settings), stdout=log_path.open("w"), stderr=subprocess.STDOUT)


def test_a_locked_catalog_fails_the_stream_loudly_and_it_resumes_with_nothing_lost(
    kafka: Settings, tmp_path: Path
) -> None:
    topic = "catalog-outage"
    assert run_cli(kafka, "topic", "create", topic, timeout=60).returncode == 0
    settings = table_settings(kafka, tmp_path, "outage", topic=topic)
    first = tmp_path / "first.log"
    driver = start_driver(settings, first)
    try:
        assert run_cli(settings, "produce", "-t", topic, "--count", "2000", timeout=120).returncode == 0

        def has(rows: int, log_path: Path, proc: subprocess.Popen) -> bool:
            assert proc.poll() is None, log_path.read_text()[-3000:]
            try:
                return arrow_state(settings, "outage")[0] >= rows
            except Exception:  # the table appears with the first batch
                return False

        wait_for("the first 2,000 records", lambda: has(2000, first, driver), 180, every=2, log=first)
        # another process takes the catalog database's write lock and keeps it
        catalog_file = catalog_config(settings).sqlite_file
        lock = sqlite3.connect(catalog_file, isolation_level=None)
        lock.execute("BEGIN EXCLUSIVE")
        locked_at = time.monotonic()
        try:
            assert run_cli(settings, "produce", "-t", topic, "--count", "3000", timeout=120).returncode == 0
            code = driver.wait(400)
            failed_after = time.monotonic() - locked_at
        finally:
            lock.rollback()
            lock.close()
        said = first.read_text()
        errors = [line for line in said.splitlines() if line.startswith("error:")]
        assert code == ExitCode.SERVICE, said[-3000:]
        assert len(errors) == 1 and "the Iceberg catalog did not answer" in errors[0], errors or said[-3000:]
        assert "resumes from its checkpoint" in errors[0]
        assert 30 < failed_after < 300, failed_after  # it tried through the retries, then stopped
        # the catalog is back: the stream resumes from its checkpoint
        second = tmp_path / "second.log"
        driver = start_driver(settings, second)
        wait_for("all 5,000 records after the restart", lambda: has(5000, second, driver), 240, every=2, log=second)
        rows, _digest, unique = arrow_state(settings, "outage")
        assert rows == unique == 5000
    finally:
        run_cli(settings, "stream", "stop", "outage", timeout=120)
        try:
            driver.wait(90)
        except subprocess.TimeoutExpired:
            driver.kill()
